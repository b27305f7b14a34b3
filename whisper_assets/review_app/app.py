"""The review web app: an ASGI app (FastAPI) over the review database, with a static page and no CDN.

Safety: transcripts are sent as JSON and rendered as text by the page; state-changing requests need the CSRF
token the page was served with; audio is addressed by integer id only; SQL is parameterized; when the server is
bound beyond loopback, every request needs the access token.
"""

import io
import math
import secrets
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import soundfile as sf
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from whisper_assets.audio.levels import peaks
from whisper_assets.review_app.dagster_client import DagsterError, TrainingLauncher
from whisper_assets.review_app.store import NotFound, ReviewStore, StaleVersion
from whisper_assets.sources.review_db import CorruptBlob

STATIC = resources.files("whisper_assets.review_app") / "static"


class EntryEdit(BaseModel):
    version: str
    transcript: str | None = Field(None, max_length=10_000)
    is_reviewed: bool | None = None


class TrainRequest(BaseModel):
    base_model: str = "openai/whisper-tiny"
    learning_rate: float = Field(1e-5, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=256)
    max_epochs: float = Field(3.0, gt=0, le=100)


def create_app(db_path: Path, access_token: str | None = None, dagster_graphql: str | None = None) -> FastAPI:
    store = ReviewStore(db_path)
    launcher = TrainingLauncher(dagster_graphql or "http://127.0.0.1:3000/graphql")
    csrf_token = secrets.token_urlsafe(24)
    app = FastAPI(title="whisper-assets review", version="1")

    @app.middleware("http")
    async def require_access_token(request: Request, call_next):
        if access_token:
            given = request.headers.get("authorization", "").removeprefix(
                "Bearer "
            ) or request.query_params.get("token")
            if not given or not secrets.compare_digest(given, access_token):
                return JSONResponse({"detail": "access token required"}, status_code=401)
        return await call_next(request)

    def csrf(x_csrf_token: Annotated[str | None, Header()] = None) -> None:
        if not x_csrf_token or not secrets.compare_digest(x_csrf_token, csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")

    def who(x_reviewer: Annotated[str | None, Header()] = None) -> str:
        return (x_reviewer or "reviewer")[:64]

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

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
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
        reviewed: bool | None = None,
        since: str | None = None,
        until: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        sort: Literal["id", "-id", "timestamp", "-timestamp"] = "id",
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
    def get_entry(entry_id: int) -> dict:
        return store.details(entry_id)

    @app.get("/api/entries/{entry_id}/history")
    def get_history(entry_id: int) -> list[dict]:
        return store.history(entry_id)

    @app.get("/api/entries/{entry_id}/audio")
    def get_audio(
        entry_id: int, range_header: Annotated[str | None, Header(alias="range")] = None
    ) -> Response:
        try:
            samples = store.audio(entry_id)
        except CorruptBlob as exc:
            raise HTTPException(422, f"entry {entry_id} has unplayable audio: {exc}") from exc
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16_000, format="WAV", subtype="PCM_16")
        return _ranged(buffer.getvalue(), range_header, "audio/wav")

    @app.get("/api/entries/{entry_id}/peaks")
    def get_peaks(entry_id: int, buckets: Annotated[int, Query(ge=10, le=4000)] = 800) -> dict:
        try:
            samples = store.audio(entry_id)
        except CorruptBlob as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"duration": samples.size / 16_000, "peaks": peaks(samples, buckets)}

    @app.put("/api/entries/{entry_id}", dependencies=[Depends(csrf)])
    def put_entry(entry_id: int, edit: EntryEdit, reviewer: Annotated[str, Depends(who)]) -> dict:
        return store.update(entry_id, edit.version, reviewer, edit.transcript, edit.is_reviewed)

    @app.post("/api/entries/{entry_id}/review", dependencies=[Depends(csrf)])
    def review_entry(entry_id: int, reviewer: Annotated[str, Depends(who)]) -> dict:
        current = store.get(entry_id)
        return store.update(entry_id, current["version"], reviewer, is_reviewed=True)

    @app.delete("/api/entries/{entry_id}", dependencies=[Depends(csrf)])
    def delete_entry(entry_id: int, reviewer: Annotated[str, Depends(who)]) -> dict:
        store.delete(entry_id, reviewer)
        return {"deleted": entry_id, "restore": f"/api/trash/{entry_id}/restore"}

    @app.get("/api/trash")
    def list_trash() -> list[dict]:
        return store.trash()

    @app.post("/api/trash/{entry_id}/restore", dependencies=[Depends(csrf)])
    def restore_entry(entry_id: int, reviewer: Annotated[str, Depends(who)]) -> dict:
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
