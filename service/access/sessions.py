"""Web session secret, CSRF tokens, and safe redirects.

The login session is a signed cookie (Starlette's SessionMiddleware: HttpOnly, SameSite=Lax; Secure
unless the request is served on loopback over plain HTTP, or as configured: :class:`SessionCookies`). It
holds the user id and the user's session version: logout, deactivation and a password change raise the
version and so end every session of that user (``access.deps.session_user``). Every state-changing form carries the session's CSRF token in a hidden
field; JSON API writes authenticated by that cookie (not by HTTP Basic) must send it as ``X-CSRF-Token``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Form, HTTPException, Request, status
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.settings import Settings

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def session_secret(settings: Settings) -> str:
    """The configured secret, else the one in data_dir/session_secret (created once, mode 0600)."""
    if settings.session_secret is not None and settings.session_secret.get_secret_value():
        return settings.session_secret.get_secret_value()
    path: Path = settings.data_dir / "session_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made earlier, or by another process starting at the same time
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
            fh.flush()
            os.fsync(fh.fileno())
    for _ in range(50):  # another process may be between creating and writing it
        secret = path.read_text().strip()
        if secret:
            return secret
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it to generate a new session secret")


def is_loopback(host: Any) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if not isinstance(host, str) or not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def served_on_loopback(scope: Scope) -> bool:
    """Plain HTTP to a loopback address (the server's own, as the ASGI server reports it)."""
    server = scope.get("server") or (None,)
    return scope.get("scheme") == "http" and is_loopback(server[0])


class SessionCookies:
    """Starlette's SessionMiddleware (SameSite=Lax) with the cookie's Secure flag decided per request:
    ``secure`` True or False as configured, None (the default) Secure unless :func:`served_on_loopback`."""

    def __init__(
        self, app: ASGIApp, secure: bool | None, secret_key: str, session_cookie: str, max_age: int
    ) -> None:
        self.secure = secure
        options: dict[str, Any] = {"session_cookie": session_cookie, "max_age": max_age, "same_site": "lax"}
        self._secure = SessionMiddleware(app, secret_key, https_only=True, **options)
        self._plain = SessionMiddleware(app, secret_key, https_only=False, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = self.secure if self.secure is not None else not served_on_loopback(scope)
        await (self._secure if secure else self._plain)(scope, receive, send)


def csrf_token(request: Request) -> str:
    """This session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _valid(request: Request, sent: str | None) -> bool:
    expected = request.session.get("csrf") if "session" in request.scope else None
    return bool(expected and sent and secrets.compare_digest(expected.encode(), sent.encode()))


def check_csrf_form(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    """Dependency of every POST form route."""
    if not _valid(request, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or missing CSRF token: reload the page")


def check_csrf_api(request: Request) -> None:
    """Dependency of JSON API writes: a browser session must prove the request came from our pages.

    Asked whenever the session cookie is present, even beside an Authorization header: the cookie is
    what authenticates such a request (see ``current_user``), and browsers may add cached Basic
    credentials to a cross-site request on their own.
    """
    uses_cookie = "session" in request.scope and request.session.get("user_id") is not None
    if uses_cookie and not _valid(request, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"send the session's CSRF token in {CSRF_HEADER}")


def local_path(target: str | None, default: str = "/sites") -> str:
    """``target`` if it is a path on this site (no scheme, no host, no //), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
