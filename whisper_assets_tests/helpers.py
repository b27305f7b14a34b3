"""Helpers shared by the tests: the Dagster-level runners, and where the optional real data lives."""

import shutil
import socket
import time
from pathlib import Path

import pytest

# Real recordings and models for quality checks; tests that need them skip without them.
SHARED = Path(__file__).resolve().parents[2] / "shared"
FSDD = SHARED / "data" / "fsdd-dev"
TINY_EN = SHARED / "models" / "whisper-tiny.en"
BASE = SHARED / "models" / "whisper-base"
# Screenshots and other test artifacts (git-ignored); docs/*.png in the README are copies of them.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Debian's chromium + chromedriver, for pages checked in a real browser (the `browser` fixture).
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
NEEDS_BROWSER = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def run_job(
    config_path: Path,
    job: str,
    instance,
    *,
    partition_key: str | None = None,
    assets: list[str] | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
    workers: int = 0,
    tags: dict[str, str] | None = None,
):
    """Run one of the code location's jobs, bound to this settings file, in process on a test instance."""
    import dagster as dg

    from whisper_assets.definitions import build_definitions

    job_def = build_definitions(str(config_path), workers=workers).resolve_job_def(job)
    return job_def.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
        run_config=run_config,
        raise_on_error=raise_on_error,
        tags=tags,
    )


def tick(config_path: Path, name: str, instance, cursor: str | None = None):
    """Evaluate one of the code location's sensors or schedules once, with its resources, on a test instance."""
    import dagster as dg

    from whisper_assets.definitions import build_definitions

    defs = build_definitions(str(config_path))
    repository = defs.get_repository_def()
    if repository.has_sensor_def(name):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as context:
            return repository.get_sensor_def(name)(context)
    with dg.build_schedule_context(instance=instance, resources=defs.resources) as context:
        return repository.get_schedule_def(name)(context)


def materialize_source(
    config_path: Path, name: str, instance=None, workers: int = 0, tags: dict[str, str] | None = None
):
    """Add the source's partition and run its ingest job on a test instance."""
    import dagster as dg

    from whisper_assets.defs.partitions import source_partitions

    if instance is None:
        with dg.instance_for_test() as fresh:
            return materialize_source(config_path, name, fresh, workers, tags)
    if name not in instance.get_dynamic_partitions(source_partitions.name):
        instance.add_dynamic_partitions(source_partitions.name, [name])
    return run_job(config_path, "ingest_source", instance, partition_key=name, workers=workers, tags=tags)


def run_alongside(writer, reader) -> tuple[list[Exception], int]:
    """Run `writer` in a thread and call `reader` until it finishes; return the writer's errors and reader calls."""
    import threading

    errors: list[Exception] = []
    done = threading.Event()

    def guarded() -> None:
        try:
            writer()
        except Exception as exc:  # returned to the test, which asserts there were none
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=guarded)
    thread.start()
    calls = 0
    while not done.is_set():
        reader()
        calls += 1
    thread.join()
    return errors, calls
