"""Typed errors of the ARI client.

Every error raised by :mod:`voice.ari` is an :class:`AriError`. HTTP errors carry the status, Asterisk's own
``message`` (ARI answers ``{"message": "Channel not found"}``) and the request; ``str()`` reads like
``ARI POST /channels/abc/answer → 404 Channel not found``.
"""

from __future__ import annotations


class AriError(Exception):
    """Base of every ARI client error."""

    status: int | None
    message: str
    method: str | None
    path: str | None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        request = " ".join(part for part in (self.method, self.path) if part)
        head = f"ARI {request}" if request else "ARI"
        if self.status is not None:
            return f"{head} → {self.status} {self.message}".rstrip()
        return f"{head}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:  # keep keyword-only attributes through pickling
        return (_rebuild, (type(self), self.message, self.status, self.method, self.path))


def _rebuild(cls: type[AriError], message: str, status: int | None, method: str | None, path: str | None) -> AriError:
    return cls(message, status=status, method=method, path=path)


class AriBadRequest(AriError):
    """400: a parameter is missing or invalid."""


class AriAuthError(AriError):
    """401/403: wrong ARI user name or password (or the user may not do this)."""


class AriNotFound(AriError):
    """404: the channel, bridge, playback … does not exist (any more)."""


class AriConflict(AriError):
    """409: the object is in the wrong state (e.g. channel not in a Stasis application, bridge id taken)."""


class AriUnprocessable(AriError):
    """422: the request is well-formed but refers to something unusable (e.g. channel not yet in Stasis)."""


class AriServerError(AriError):
    """5xx: Asterisk failed."""


class AriTimeout(AriError):
    """No answer in time. For a POST/DELETE the outcome is unknown: Asterisk may have acted on it."""


class AriConnectionError(AriError):
    """Asterisk is unreachable (connection refused or reset, DNS failure, connect timeout)."""


class MalformedEvent(AriError):
    """An event from the events WebSocket that is not valid JSON or does not fit its model."""

    text: str

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text

    def __str__(self) -> str:
        return f"ARI malformed event: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_malformed, (self.message, self.text))


def _rebuild_malformed(message: str, text: str) -> MalformedEvent:
    return MalformedEvent(message, text=text)


_BY_STATUS: dict[int, type[AriError]] = {
    400: AriBadRequest,
    401: AriAuthError,
    403: AriAuthError,
    404: AriNotFound,
    409: AriConflict,
    422: AriUnprocessable,
}


def error_for_status(status: int, message: str, *, method: str | None = None, path: str | None = None) -> AriError:
    """The typed error for an HTTP status (unknown 4xx → plain :class:`AriError`)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = AriServerError if status >= 500 else AriError
    return cls(message, status=status, method=method, path=path)
