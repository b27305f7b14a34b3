"""The ASGI app (FastAPI): OpenAI's `/v1/audio/transcriptions`, `/v1/audio/translations` and `/v1/models`, plus
`/health` and, beside them, `/v1/audio/keystrokes` (key events of a typing recording, from the keystroke model).

Transcriptions run on worker threads behind admission control (`admission.py`: at most `workers` run and
`max_waiting` wait, more get 429; each request has a deadline, 504 past it), so the event loop keeps answering;
each request takes the model it starts with and finishes on it, whatever the follower swaps in meanwhile. Errors
use OpenAI's JSON shape and status codes, so the official clients raise their usual exceptions. Access: the
Host header must be one the server answers to; off loopback every request but `/health` needs the token as
`Authorization: Bearer` (the `api_key` of OpenAI's clients).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import threading
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import numpy as np
from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from whisper_assets.audio.decode import AudioDecodeError, decode
from whisper_assets.audio.process import to_mono_16k
from whisper_assets.serving.admission import Admission, Deadline
from whisper_assets.serving.engine import TranscribeOptions
from whisper_assets.serving.errors import BadRequest, ModelNotFound, ServingError, TooLarge, Unauthorized
from whisper_assets.serving.keys import NewestKeyDecoder
from whisper_assets.serving.pool import DEFAULT_NAMES, ModelPool
from whisper_assets.serving.responses import GRANULARITIES, RESPONSE_FORMATS, render
from whisper_assets.tracking import CHAMPION
from whisper_assets.tracking.tracker import PROMOTED_AT_TAG, ModelVersionInfo, export_tag
from whisper_assets.web_access import bearer_token, host_name, served_names, token_matches

log = logging.getLogger(__name__)
FORM_OVERHEAD_BYTES = 1 << 20  # multipart headers and the other fields, beside the file itself
PUBLIC_PATHS = ("/health", "/favicon.ico")  # answered without the API key


def create_app(
    pool: ModelPool,
    access_token: str | None = None,
    bound_host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    follow: bool = True,
    keys: NewestKeyDecoder | None = None,
) -> FastAPI:
    """The server over a model pool; with `follow`, a background thread keeps the pool on the champion; with
    `keys`, it also decodes typing recordings into key events."""
    settings = pool.settings
    names = served_names(bound_host, allowed_hosts)
    admission = Admission(settings.workers, settings.max_waiting, settings.request_timeout_seconds)
    max_bytes = int(settings.max_upload_mb * 2**20)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()
        if follow:  # a daemon: a load in progress must not hold up shutdown
            threading.Thread(target=pool.follow, args=(stop,), name="champion-follower", daemon=True).start()
        yield
        stop.set()
        admission.shutdown()

    app = FastAPI(title="whisper-assets transcription server", version="1", lifespan=lifespan)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Known Host names only; the token off loopback; an oversized upload, or one the full queue cannot take,
        refused before it is read."""
        host = host_name(request.headers.get("host", ""))
        if names is not None and host not in names:
            return JSONResponse(BadRequest(f"unknown Host {host!r}: not served here").body(), status_code=421)
        given = bearer_token(request.headers.get("authorization"))
        public = request.url.path in PUBLIC_PATHS
        if access_token and not public and not token_matches(given, access_token):
            return _error(Unauthorized("a valid API key is required (Authorization: Bearer <token>)"))
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes + FORM_OVERHEAD_BYTES:
            return _error(_too_large(int(length), max_bytes))
        if request.method == "POST" and request.url.path.startswith("/v1/audio/") and admission.full:
            return _error(admission.refuse())  # before the upload is read
        return await call_next(request)

    @app.exception_handler(ServingError)
    async def serving_error(_request: Request, exc: ServingError):
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        problem = exc.errors()[0]
        param = str(problem["loc"][-1]) if problem["loc"] else None
        message = (
            f"missing required parameter: {param!r}"
            if problem["type"] == "missing"
            else f"invalid value for {param!r}: {problem['msg']}"
        )
        return _error(BadRequest(message, param=param))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException):
        body = {
            "error": {
                "message": str(exc.detail),
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception):
        log.exception("request failed")
        return _error(ServingError(f"internal error ({exc.__class__.__name__}: {exc})"))

    async def transcribe(
        file: UploadFile,
        model: str,
        options: TranscribeOptions,
        response_format: str,
        granularities: list[str],
    ):
        _check_parameters(options, response_format, granularities)
        if file.size is not None and file.size > max_bytes:
            raise _too_large(file.size, max_bytes)

        def work(deadline: Deadline):
            loaded = pool.model_for(model)
            samples = read_upload(file.file, file.filename)
            return loaded, loaded.transcribe(samples, options, settings, deadline)

        loaded, result = await admission.run(work)
        body = render(result, response_format, options.task, granularities, _language_name(result.language))
        headers = {"x-model-version": loaded.version}
        if isinstance(body, str):
            return PlainTextResponse(body, headers=headers)
        return JSONResponse(body, headers=headers)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        file: UploadFile,
        model: Annotated[str, Form()],
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
        timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    ):
        options = TranscribeOptions(
            "transcribe", language, prompt, temperature, "word" in (timestamp_granularities or [])
        )
        return await transcribe(file, model, options, response_format, timestamp_granularities or [])

    @app.post("/v1/audio/translations")
    async def translations(
        file: UploadFile,
        model: Annotated[str, Form()],
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
    ):
        options = TranscribeOptions("translate", None, prompt, temperature)
        return await transcribe(file, model, options, response_format, [])

    @app.post("/v1/audio/keystrokes")
    async def keystrokes(file: UploadFile):
        """`{"events": ["KeyA_DOWN", ...], "model": "<run>/<checkpoint>"}` for one typing recording."""
        if keys is None:
            raise ModelNotFound(
                "this server decodes no keystrokes (it was started without them)", param="file"
            )
        if file.size is not None and file.size > max_bytes:
            raise _too_large(file.size, max_bytes)

        def work(_deadline: Deadline):
            decoder = keys.current()
            return decoder, decoder.decode_audio(read_upload(file.file, file.filename))

        decoder, events = await admission.run(work)
        return {"object": "keystrokes", "model": decoder.source, "events": events}

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"object": "list", "data": model_entries(pool)}

    @app.get("/v1/models/{model_id}")
    def get_model(model_id: str) -> dict:
        for entry in model_entries(pool):
            if entry["id"] == model_id:
                return entry
        raise ModelNotFound(f"no model {model_id!r} (GET /v1/models lists them)", param="model")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # none: a browser opening /health asks for one

    @app.get("/health")
    def health() -> JSONResponse:
        report = pool.health() | {"queue": admission.depth()}
        return JSONResponse(report, status_code=200 if report["model_version"] else 503)

    return app


def model_entries(pool: ModelPool) -> list[dict]:
    """The registered versions, then the names that point at one (`champion`, `whisper-1`), as OpenAI model
    objects with the registry's facts beside them."""
    versions = pool.tracker.model_versions()
    health = pool.health()
    served, rejected = health["model_version"], health["rejected"]
    owner = pool.tracker.registered_model
    entries = [_version_entry(v, owner, served, rejected, pool.exports.quantization) for v in versions]
    by_version = {e["id"]: e for e in entries}
    for alias, target in ((CHAMPION, _alias_target(versions, CHAMPION)), (DEFAULT_NAMES[1], served)):
        if target in by_version:
            entries.append(
                {"id": alias, "object": "model", "created": by_version[target]["created"], "owned_by": owner}
                | {"version": target}
            )
    return entries


def _version_entry(
    info: ModelVersionInfo, owner: str, served: str | None, rejected: dict[str, str], quantization: str
) -> dict:
    promoted = info.tags.get(PROMOTED_AT_TAG)
    role = CHAMPION if CHAMPION in info.aliases else ("previous champion" if promoted else "candidate")
    return {
        "id": info.version,
        "object": "model",
        "created": info.created_at,
        "owned_by": owner,
        "aliases": list(info.aliases),
        "role": role,
        "promoted_at": promoted,
        "exported": export_tag(quantization) in info.tags,
        "served": info.version == served,
        "rejected": rejected.get(info.version),
        "mlflow_run_id": info.run_id,
    }


def _alias_target(versions: list[ModelVersionInfo], alias: str) -> str | None:
    return next((v.version for v in versions if alias in v.aliases), None)


def read_upload(stream: BinaryIO, filename: str | None) -> np.ndarray:
    """Decode an uploaded file (any format the platform decodes) to 16 kHz mono samples."""
    suffix = Path(filename or "").suffix[:12]
    stream.seek(0)
    with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
        shutil.copyfileobj(stream, copy)
        copy.flush()
        if copy.tell() == 0:
            raise BadRequest("the file is empty", param="file")
        try:
            samples, rate = decode(copy.name)
        except AudioDecodeError as exc:
            raise BadRequest(f"the file is not audio this server can decode: {exc}", param="file") from exc
    return to_mono_16k(samples, rate)


def _check_parameters(options: TranscribeOptions, response_format: str, granularities: list[str]) -> None:
    if response_format not in RESPONSE_FORMATS:
        raise BadRequest(
            f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
        )
    if unknown := [g for g in granularities if g not in GRANULARITIES]:
        raise BadRequest(
            f"timestamp_granularities {unknown} are not among {list(GRANULARITIES)}",
            param="timestamp_granularities",
        )
    if granularities and response_format != "verbose_json":
        raise BadRequest(
            "timestamp_granularities need response_format 'verbose_json'", param="timestamp_granularities"
        )
    if not 0 <= options.temperature <= 1:
        raise BadRequest(f"temperature {options.temperature} is outside 0..1", param="temperature")


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(
        f"the upload is {size / 2**20:.1f} MB; this server accepts at most {limit / 2**20:g} MB "
        "(serving.max_upload_mb)",
        param="file",
    )


def _error(exc: ServingError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


@functools.cache
def _language_names() -> dict[str, str]:
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES


def _language_name(code: str) -> str:
    """`english` for `en`, as OpenAI's verbose_json names the language."""
    return _language_names().get(code, code)
