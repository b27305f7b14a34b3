"""What goes wrong in a request, as OpenAI's error JSON names it: HTTP status, type, code and the parameter."""

from __future__ import annotations


class ServingError(Exception):
    """A request that cannot be served; the message is shown to the caller."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param
        self.headers: dict[str, str] = {}

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(ServingError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(ServingError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(ServingError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class TooLarge(ServingError):
    status = 413
    type = "invalid_request_error"
    code = "file_too_large"


class NotServable(ServingError):
    """A version that exists but cannot be served: no export and no way to make one, a trimmed window, or a failed
    smoke test."""

    status = 503
    code = "model_not_servable"


class NoModel(ServingError):
    status = 503
    code = "model_unavailable"


class Overloaded(ServingError):
    """The queue is full: OpenAI's rate-limit answer, which its clients retry after `Retry-After`."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class TimedOut(ServingError):
    status = 504
    code = "timeout"
