"""Request-body limits and the vehicle token, checked before any body is read (a pure ASGI middleware).

Without it, FastAPI reads and parses a request body before any dependency runs: a 1.5 GB multipart POST
with no token was spooled to temporary files before its 401, and a 300 MB JSON body was parsed in memory.
:class:`RequestLimits` sits in front of the application and

- answers 413 when the declared ``Content-Length`` exceeds the route's limit, before reading a byte;
- answers 401 for an upload (``POST /api/v1/batches``) without a valid vehicle token, before reading a
  byte (the route's own dependency checks the token again, with its full answer);
- counts the bytes as they stream in (chunked bodies declare no length) and stops the request with 413
  as soon as they pass the limit.

Limits per route: an upload batch up to its configured maximum (``Settings.upload_body_bytes``), a
citizen's Open311 report (``POST /open311/v2/requests.json|xml``, which may carry a photo) up to the photo
limit plus ``max_body_bytes`` (its 413 in the spec's error format), everything else ``max_body_bytes``
(1 MB by default). A reverse proxy in front should allow the same
(nginx: ``client_max_body_size``, see README).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.db.vehicles import vehicle_for_token

UPLOAD_PATH = "/api/v1/batches"
OPEN311_POSTS = ("/open311/v2/requests.json", "/open311/v2/requests.xml")


class BodyTooLarge(HTTPException):
    """The body streamed past the route's limit (raised from ``receive``; answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


@dataclass(frozen=True)
class BodyLimits:
    """Bytes a request body may have: ``upload`` for a batch upload, ``open311`` for a citizen's report
    (0: as ``default``), ``default`` for everything else."""

    default: int
    upload: int
    open311: int = 0

    def __post_init__(self) -> None:
        if self.default < 1 or self.upload < 1 or self.open311 < 0:
            raise ValueError(
                f"body limits must be positive, got {self.default}, {self.upload}, {self.open311}"
            )

    def for_scope(self, scope: Scope) -> int:
        if _is_upload(scope):
            return self.upload
        if _is_open311_post(scope):
            return self.open311 or self.default
        return self.default


def _is_upload(scope: Scope) -> bool:
    return bool(scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH)


def _is_open311_post(scope: Scope) -> bool:
    return bool(scope["method"] == "POST" and scope["path"].rstrip("/") in OPEN311_POSTS)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, else None."""
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


async def _answer(
    send: Send,
    status: int,
    detail: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    scope: Scope | None = None,
) -> None:
    body, media = json.dumps({"detail": detail}).encode(), b"application/json"
    if scope is not None and _is_open311_post(scope):  # GeoReport v2's error format
        if scope["path"].rstrip("/").endswith(".xml"):
            body = (
                f'<?xml version="1.0" encoding="utf-8"?><errors><error><code>{status}</code>'
                f"<description>{html.escape(detail)}</description></error></errors>"
            ).encode()
            media = b"text/xml; charset=utf-8"
        else:
            body = json.dumps([{"code": status, "description": detail}]).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body is not drained
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: body limits per route and the vehicle token of uploads, before the body is read.

    ``token_valid`` is called (in a worker thread) with the bearer token of an upload; None skips the
    early token check.
    """

    def __init__(
        self, app: ASGIApp, limits: BodyLimits, token_valid: Callable[[str], bool] | None = None
    ) -> None:
        self.app = app
        self.limits = limits
        self.token_valid = token_valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_scope(scope)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "invalid Content-Length", scope=scope)
                return
            if int(declared) > limit:
                detail = f"request body of {int(declared)} bytes; the limit is {limit}"
                await _answer(send, 413, detail, scope=scope)
                return
        if _is_upload(scope) and self.token_valid is not None:
            token = bearer_token(scope)
            if token is None or not await run_in_threadpool(self.token_valid, token):
                detail = (
                    "missing vehicle token: send 'Authorization: Bearer <token>'"
                    if token is None
                    else "unknown or revoked vehicle token"
                )
                await _answer(send, 401, detail, ((b"www-authenticate", b"Bearer"),))
                return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # raised where nothing turned it into a response
            if started:
                raise
            await _answer(send, 413, str(exc.detail), scope=scope)


def token_checker(sessions: Any) -> Callable[[str], bool]:
    """Whether a vehicle token is known and active, for :class:`RequestLimits` (one short session)."""

    def valid(token: str) -> bool:
        with sessions() as session:
            return vehicle_for_token(session, token) is not None

    return valid
