"""API errors and the one mapping from engine errors to HTTP statuses."""

from __future__ import annotations

from nova_lxd.engine import errors as engine_errors


class ApiError(Exception):
    """An error answered as LXD's error envelope with ``status``."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PreconditionFailed(ApiError):
    status = 412


class TooLarge(ApiError):
    status = 413


def status_of(exc: BaseException) -> int:
    """HTTP status for an engine error (500 for anything unexpected)."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, engine_errors.NotFound):
        return 404
    if isinstance(exc, engine_errors.Conflict):
        return 409
    if isinstance(exc, engine_errors.InvalidInput):
        return 400
    return 500


def message_of(exc: BaseException) -> str:
    """What a client may read: our own and the engine's messages, never
    the text of an unexpected exception (it may hold host details)."""
    if isinstance(exc, (ApiError, engine_errors.EngineError)):
        return str(exc)
    return "Internal server error"
