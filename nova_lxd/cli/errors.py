"""Errors the client shows to its user.

Every failure a user can act on becomes a :class:`CliError`, printed by
``nlxc`` as one line on stderr with exit status 1 (never a traceback).
Server errors keep the message of LXD's error envelope; the HTTP status
picks the subclass so callers can react to "not found" or "conflict"
without parsing text.
"""

from __future__ import annotations


class CliError(Exception):
    """An error the user can act on; its text is the whole message."""


class ApiError(CliError):
    """The daemon answered with LXD's error envelope (or a failed
    operation)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    """404: the instance, image, snapshot or alias does not exist."""


class Conflict(ApiError):
    """409: the name is taken or the state forbids the action."""


class ConnectionFailed(CliError):
    """The daemon could not be reached at all (socket or URL)."""


class CertificateMismatch(CliError):
    """The server's certificate is not the one pinned for this remote."""


_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict}


def api_error(message: str, status: int) -> ApiError:
    """The typed error for an HTTP status (why: one mapping, here)."""
    return _BY_STATUS.get(status, ApiError)(message, status)
