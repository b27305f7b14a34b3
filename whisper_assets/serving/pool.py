"""The models a server holds: the version it serves by default (the champion it follows, or a pin), and the
versions requests pin by name; a new champion is loaded in the background, smoke-tested, then swapped in. A
version that fails is remembered with its reason and tried again after a back-off (an export that was missing,
a registry or disk that was down), not only after a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from whisper_assets.serving import ServingSettings
from whisper_assets.serving.engine import LoadedModel, load_model
from whisper_assets.serving.errors import ModelNotFound, NoModel, NotServable, ServingError
from whisper_assets.serving.exports import ExportCache
from whisper_assets.serving.smoke import SmokeClip
from whisper_assets.tracking import CHAMPION
from whisper_assets.tracking.tracker import Tracker

log = logging.getLogger(__name__)
DEFAULT_NAMES = (CHAMPION, "whisper-1")  # whisper-1: what OpenAI's examples send
_MAX_RETRY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Rejection:
    """Why a version is not served, and when it may be tried again (each failure doubles the wait)."""

    reason: str
    failures: int
    retry_at: float

    @classmethod
    def after(cls, previous: Rejection | None, reason: str, back_off: float) -> Rejection:
        failures = previous.failures + 1 if previous else 1
        wait = min(back_off * 2 ** (failures - 1), _MAX_RETRY_SECONDS)
        return cls(reason, failures, time.time() + wait)

    @property
    def due(self) -> bool:
        return time.time() >= self.retry_at


class ModelPool:
    def __init__(self, tracker: Tracker, exports: ExportCache, settings: ServingSettings, smoke: SmokeClip):
        self.tracker = tracker
        self.exports = exports
        self.settings = settings
        self.smoke = smoke
        self._current: LoadedModel | None = None  # replaced whole, never mutated: the swap is one assignment
        self._pinned: OrderedDict[str, LoadedModel] = OrderedDict()
        self._rejected: dict[str, Rejection] = {}
        self._champion: str | None = None
        self._checked_at: float | None = None
        self._registry_error: str | None = None
        self._lock = threading.Lock()  # guards the pinned cache and the rejected map
        self._loading = threading.Lock()  # one load at a time: a load downloads, converts and smoke-tests

    @classmethod
    def create(cls, tracker: Tracker, settings: ServingSettings, cache_root: Path) -> ModelPool:
        """A pool that keeps its exports under cache_root and smoke-tests with the configured clip."""
        return cls(
            tracker,
            ExportCache(tracker, cache_root, settings.quantization),
            settings,
            SmokeClip.from_settings(settings),
        )

    @property
    def following(self) -> str:
        return "pinned" if self.settings.pinned_version else CHAMPION

    def refresh(self) -> None:
        """Read the registry once; load, smoke-test and swap in the version to serve when it changed."""
        try:
            self._champion = self.tracker.champion()
            self._registry_error = None
        except Exception as exc:  # a registry outage must not stop the server from serving what it has
            self._registry_error = f"{exc.__class__.__name__}: {exc}"
            log.warning("reading the model registry failed: %s", self._registry_error)
            return
        finally:
            self._checked_at = time.time()
        target = self.settings.pinned_version or self._champion
        current = self._current
        if target is None or (current and current.version == target) or self._waiting_to_retry(target):
            return
        log.info("loading v%s (%s) in the background", target, self.following)
        try:
            loaded = self._load_checked(target)
        except ServingError as exc:
            log.error("not serving v%s: %s; still serving %s", target, exc, _name(current))
            return
        self._current = loaded
        log.info("now serving v%s (was %s)", target, _name(current))

    def follow(self, stop: threading.Event) -> None:
        """Refresh every poll interval until `stop` is set."""
        while not stop.is_set():
            try:
                self.refresh()
            except Exception:  # the follower outlives any one poll
                log.exception("checking the champion failed")
            stop.wait(self.settings.poll_seconds)

    def model_for(self, name: str) -> LoadedModel:
        """The model a request names: `champion`/`whisper-1` (the served version) or a version (`3`, `v3`)."""
        name = (name or "").strip()
        if name in DEFAULT_NAMES:
            if self._current is None:
                raise NoModel(self.unavailable_reason())
            return self._current
        version = name.removeprefix("v")
        if not version.isdigit():
            raise ModelNotFound(
                f"unknown model {name!r}: use 'champion', 'whisper-1' or a registered version such as '3'",
                param="model",
            )
        if loaded := self._loaded(version):
            return loaded
        loaded = self._load_checked(version)
        with self._lock:
            self._pinned[version] = loaded
            while len(self._pinned) > self.settings.loaded_versions:
                self._pinned.popitem(last=False)
        return loaded

    def _loaded(self, version: str) -> LoadedModel | None:
        """The version if it is in memory already: the served one, or one a request pinned."""
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._lock:
            if version in self._pinned:
                self._pinned.move_to_end(version)
                return self._pinned[version]
        return None

    def _load_checked(self, version: str) -> LoadedModel:
        """Fetch (or make) the export, load it and smoke-test it, unless it is in memory already (loaded while
        this waited, or pinned by a request); a failure is remembered and not tried again before its back-off."""
        with self._lock:
            rejection = self._rejected.get(version)
            if rejection is not None and not rejection.due:
                raise NotServable(_with_retry(rejection), param="model")
        with self._loading:
            if loaded := self._loaded(version):
                return loaded
            try:
                loaded = load_model(self.exports.local_export(version), version, self.settings)
                if failure := self.smoke.failure(loaded, self.settings):
                    raise NotServable(f"v{version} failed the smoke test: {failure}", param="model")
            except ModelNotFound:
                raise
            except Exception as exc:
                reason = (
                    str(exc)
                    if isinstance(exc, ServingError)
                    else f"v{version} could not be loaded ({exc.__class__.__name__}: {exc})"
                )
                with self._lock:
                    self._rejected[version] = Rejection.after(
                        self._rejected.get(version), reason, self.settings.retry_rejected_seconds
                    )
                raise NotServable(reason, param="model") from exc
        with self._lock:
            self._rejected.pop(version, None)
        return loaded

    def _waiting_to_retry(self, version: str) -> bool:
        with self._lock:
            rejection = self._rejected.get(version)
        return rejection is not None and not rejection.due

    def unavailable_reason(self) -> str:
        if self._checked_at is None:
            return "the server is still loading its first model; retry in a moment"
        if self._registry_error:
            return f"the model registry cannot be read ({self._registry_error})"
        target = self.settings.pinned_version or self._champion
        if target is None:
            return (
                "the registry has no champion yet: run the `train_and_evaluate` job until a model passes the "
                "champion gate (then `exported_model` exports it), or pin a version with `--pin`"
            )
        if rejection := self._rejected.get(target):
            return _with_retry(rejection)
        return f"v{target} is loading"

    def health(self) -> dict:
        current = self._current
        target = self.settings.pinned_version or self._champion
        status = "unavailable" if current is None else "ok" if current.version == target else "degraded"
        with self._lock:
            rejected = {version: r.reason for version, r in self._rejected.items()}
            retry_at = {version: _iso(r.retry_at) for version, r in self._rejected.items()}
            pinned = list(self._pinned)
        return {
            "status": status,
            "model_version": current.version if current else None,
            "following": self.following,
            "target_version": target,
            "loaded_at": _iso(current.loaded_at) if current else None,
            "device": current.device if current else None,
            "compute_type": current.compute_type if current else None,
            "rejected": rejected,
            "retry_rejected_at": retry_at,
            "pinned_by_requests": pinned,
            "registry_checked_at": _iso(self._checked_at),
            "registry_error": self._registry_error,
            "message": None if status == "ok" else self._status_message(current, target),
        }

    def _status_message(self, current: LoadedModel | None, target: str | None) -> str:
        if current is None:
            return self.unavailable_reason()
        if rejection := self._rejected.get(target):
            return f"v{target} was not swapped in: {_with_retry(rejection)}; still serving v{current.version}"
        return f"serving v{current.version} while v{target} loads"


def _with_retry(rejection: Rejection) -> str:
    return f"{rejection.reason} (tried again after {_iso(rejection.retry_at)})"


def _name(model: LoadedModel | None) -> str:
    return f"v{model.version}" if model else "nothing"


def _iso(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds else None
