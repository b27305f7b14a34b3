"""The review web app: an ASGI app (FastAPI) over the review database, with a static page and no CDN.

Safety: transcripts are sent as JSON and rendered as text by the page; state-changing requests need the CSRF
token the page was served with, and a browser's Origin (when it sends one) must be the app's own; only the Host
names the server answers to are served (DNS rebinding); audio is addressed by integer id only; SQL is
parameterized; blobs inflate to a bounded length. When the server is bound beyond loopback, every request needs
the access token: as a Bearer header, or `?token=` once, which becomes an HttpOnly, SameSite=Strict session
cookie and is dropped from the address.
"""

import io
import math
import secrets
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode, urlsplit

import soundfile as sf
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from whisper_assets.audio.levels import peaks
from whisper_assets.review_app.dagster_client import DagsterError, TrainingLauncher
from whisper_assets.review_app.store import Conflict, NotFound, ReviewStore, StaleVersion
from whisper_assets.sources.review_db import MAX_AUDIO_SECONDS, CorruptBlob
from whisper_assets.web_access import bearer_token, host_name, served_names, token_matches

STATIC = resources.files("whisper_assets.review_app") / "static"
SESSION_COOKIE = "whisper_assets_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# SQLite integers are signed 64-bit: larger ids are unknown ids (404), not overflow errors.
EntryId = Annotated[int, PathParam(ge=0, le=2**63 - 1)]


class EntryEdit(BaseModel):
    version: str
    transcript: str | None = Field(None, max_length=10_000)
    is_reviewed: bool | None = None


class TrainRequest(BaseModel):
    base_model: str = "openai/whisper-tiny"
    learning_rate: float = Field(1e-5, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=256)
    max_epochs: float = Field(3.0, gt=0, le=100)


def create_app(
    db_path: Path,
    access_token: str | None = None,
    dagster_graphql: str | None = None,
    bound_host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    max_audio_seconds: float = MAX_AUDIO_SECONDS,
) -> FastAPI:
    store = ReviewStore(db_path, max_audio_seconds)
    launcher = TrainingLauncher(dagster_graphql or "http://127.0.0.1:3000/graphql")
    csrf_token = secrets.token_urlsafe(24)
    session = secrets.token_urlsafe(32)
    names = served_names(bound_host, allowed_hosts)
    app = FastAPI(title="whisper-assets review", version="1")

    @app.middleware("http")
    async def require_access_token(request: Request, call_next):
        """Bearer header or session cookie; `?token=` on a page load becomes the cookie (and leaves the URL)."""
        if not access_token or token_matches(request.cookies.get(SESSION_COOKIE), session):
            return await call_next(request)
        if token_matches(bearer_token(request.headers.get("authorization")), access_token):
            return await call_next(request)
        if token_matches(request.query_params.get("token"), access_token):
            if request.method not in SAFE_METHODS:
                return await call_next(request)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
            return response
        return JSONResponse({"detail": "access token required"}, status_code=401)

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next):
        """Only the Host names the server answers to (DNS rebinding), and no foreign Origin on a write."""
        host = host_name(request.headers.get("host", ""))
        if names is not None and host not in names:
            return JSONResponse({"detail": f"unknown Host {host!r}: not served here"}, status_code=421)
        origin = request.headers.get("origin")
        if origin is not None and request.method not in SAFE_METHODS:
            parts = urlsplit(origin)
            if parts.netloc.lower() != request.headers.get("host", "").lower():
                return JSONResponse(
                    {"detail": f"cross-origin request from {origin!r} refused"}, status_code=403
                )
        return await call_next(request)

    def csrf(x_csrf_token: Annotated[str | None, Header()] = None) -> None:
        if not x_csrf_token or not secrets.compare_digest(x_csrf_token, csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")

    def who(x_reviewer: Annotated[str | None, Header()] = None) -> str:
        return (x_reviewer or "reviewer")[:64]

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(StaleVersion)
    async def stale(_request: Request, exc: StaleVersion):
        return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=409)

    @app.exception_handler(DagsterError)
    async def dagster_down(_request: Request, exc: DagsterError):
        return JSONResponse({"detail": str(exc)}, status_code=502)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return html.replace("{{csrf_token}}", csrf_token)

    @app.get("/api/entries")
    def list_entries(
        page: Annotated[int, Query(ge=1, le=2**31)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
        reviewed: bool | None = None,
        since: str | None = None,
        until: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        sort: Literal["id", "-id", "timestamp", "-timestamp", "hardest"] = "id",
    ) -> dict:
        items, total = store.list(
            page=page, page_size=page_size, reviewed=reviewed, since=since, until=until, query=q, sort=sort
        )
        return {
            "items": items,
            "total": total,
            "page": page,
            "page_size": page_size,
            "pages": max(1, math.ceil(total / page_size)),
        }

    @app.get("/api/entries/{entry_id}")
    def get_entry(entry_id: EntryId, order: Literal["id", "hardest"] = "id") -> dict:
        return store.details(entry_id, order)

    @app.get("/api/entries/{entry_id}/history")
    def get_history(entry_id: EntryId) -> list[dict]:
        return store.history(entry_id)

    @app.get("/api/entries/{entry_id}/audio")
    def get_audio(
        entry_id: EntryId, range_header: Annotated[str | None, Header(alias="range")] = None
    ) -> Response:
        try:
            samples = store.audio(entry_id)
        except CorruptBlob as exc:
            raise HTTPException(422, f"entry {entry_id} has unplayable audio: {exc}") from exc
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16_000, format="WAV", subtype="PCM_16")
        return _ranged(buffer.getvalue(), range_header, "audio/wav")

    @app.get("/api/entries/{entry_id}/peaks")
    def get_peaks(entry_id: EntryId, buckets: Annotated[int, Query(ge=10, le=4000)] = 800) -> dict:
        try:
            samples = store.audio(entry_id)
        except CorruptBlob as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"duration": samples.size / 16_000, "peaks": peaks(samples, buckets)}

    def playable(entry_id: int) -> None:
        try:
            store.audio(entry_id)
        except CorruptBlob as exc:
            raise HTTPException(
                422, f"entry {entry_id} cannot be approved: its audio is unplayable ({exc})"
            ) from exc

    @app.put("/api/entries/{entry_id}", dependencies=[Depends(csrf)])
    def put_entry(entry_id: EntryId, edit: EntryEdit, reviewer: Annotated[str, Depends(who)]) -> dict:
        if edit.is_reviewed:
            playable(entry_id)
        return store.update(entry_id, edit.version, reviewer, edit.transcript, edit.is_reviewed)

    @app.post("/api/entries/{entry_id}/review", dependencies=[Depends(csrf)])
    def review_entry(entry_id: EntryId, reviewer: Annotated[str, Depends(who)]) -> dict:
        current = store.get(entry_id)
        playable(entry_id)
        return store.update(entry_id, current["version"], reviewer, is_reviewed=True)

    @app.delete("/api/entries/{entry_id}", dependencies=[Depends(csrf)])
    def delete_entry(entry_id: EntryId, reviewer: Annotated[str, Depends(who)]) -> dict:
        store.delete(entry_id, reviewer)
        return {"deleted": entry_id, "restore": f"/api/trash/{entry_id}/restore"}

    @app.get("/api/trash")
    def list_trash() -> list[dict]:
        return store.trash()

    @app.post("/api/trash/{entry_id}/restore", dependencies=[Depends(csrf)])
    def restore_entry(entry_id: EntryId, reviewer: Annotated[str, Depends(who)]) -> dict:
        return store.restore(entry_id, reviewer)

    @app.get("/api/stats")
    def stats() -> dict:
        return store.stats()

    @app.post("/api/train", dependencies=[Depends(csrf)])
    def train(request: TrainRequest) -> dict:
        waiting = max(1, store.stats()["reviewed"])
        steps = max(1, math.ceil(request.max_epochs * waiting / request.batch_size))
        config = {
            "base_model": request.base_model,
            "learning_rate": request.learning_rate,
            "batch_size": request.batch_size,
            "max_steps": steps,
        }
        return launcher.launch(config) | {"config": config}

    @app.get("/api/train/data")
    def train_data() -> dict:
        """What a training run would use: reviewed entries not yet trained, and the current split sizes."""
        try:
            splits = launcher.split_sizes()
        except DagsterError:
            splits = None
        return {"reviewed_not_trained": store.stats()["reviewed_not_trained"], "splits": splits}

    @app.get("/api/train/status")
    def train_status() -> dict:
        return launcher.status()

    @app.get("/api/train/logs")
    def train_logs() -> list[dict]:
        return launcher.logs()

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _ranged(payload: bytes, range_header: str | None, media_type: str) -> Response:
    """HTTP Range support (single ranges), so the player can seek."""
    size = len(payload)
    headers = {"Accept-Ranges": "bytes"}
    if not range_header or not range_header.startswith("bytes="):
        return Response(payload, media_type=media_type, headers=headers)
    first, _, last = range_header.removeprefix("bytes=").split(",")[0].strip().partition("-")
    try:
        start, end = (
            (size - int(last), size - 1) if not first else (int(first), int(last) if last else size - 1)
        )
    except ValueError:
        start, end = size, size
    if start < 0 or start >= size or end < start:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    end = min(end, size - 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(payload[start : end + 1], status_code=206, media_type=media_type, headers=headers)
