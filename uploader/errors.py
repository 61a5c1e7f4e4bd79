"""The uploader's exceptions; the tree is documented in the package docstring."""

from __future__ import annotations


class UploaderError(Exception):
    """Base of every error the uploader raises on purpose."""


class UsageError(UploaderError):
    """Bad arguments or configuration: the CLI exits 2."""


class JournalError(UploaderError):
    """The journal cannot be opened or is held by another uploader process."""


class ServerError(UploaderError):
    """The server answered with an HTTP error; `status` and the server's `detail` say which."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class AuthError(ServerError):
    """401/403: the token is wrong or revoked. Fatal: retrying cannot help."""


class BatchTooLarge(ServerError):
    """413: more images than the server accepts in one batch."""


class RequestRejected(ServerError):
    """Another 4xx for the whole request (e.g. one photo the server cannot parse at all)."""


class TransientError(UploaderError):
    """Worth retrying: network error, timeout, 5xx, 429. `retry_after` is the server's wish, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Interrupted(TransientError):
    """A stop (SIGTERM, Ctrl-C in watch mode) was requested while waiting to retry."""
