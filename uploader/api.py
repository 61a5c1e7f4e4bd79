"""The two server calls the uploader needs, with error classification and retries.

``Api`` makes single requests and turns every failure into one of the errors of ``uploader.errors``;
``Retrier`` repeats an operation on ``TransientError`` with exponential backoff and full jitter, or waits
what the server's ``Retry-After`` asks (429/503). The HTTP transport is injectable, which is how the
tests inject network failures.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from uploader.errors import AuthError, BatchTooLarge, Interrupted, RequestRejected, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
MISSING_CHUNK = 5000  # the server's limit per /frames/missing request
USER_AGENT = "roadwatch-uploader/0.1"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
    except ValueError:
        pass
    return response.text[:200] or response.reason_phrase


@dataclass(frozen=True)
class Part:
    """One image of a batch: the file name the server sees, and the bytes."""

    filename: str
    data: bytes


class Api:
    """Client of the Roadwatch upload API. `transport` replaces httpx's network layer (tests)."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.client = httpx.Client(
            base_url=server.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self.client.close()

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.post(url, **kwargs)
        except httpx.TransportError as exc:  # connect/read/write errors, timeouts, dropped connections
            raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _detail(response)
        if status in (401, 403):
            raise AuthError(status, detail)
        if status == 413:
            raise BatchTooLarge(status, detail)
        if status in (408, 425, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientError(f"HTTP {status}: {detail}", retry_after)
        raise RequestRejected(status, detail)

    @staticmethod
    def _json(response: httpx.Response, key: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or key not in body:  # e.g. a captive portal's HTML page
            raise TransientError(
                f"HTTP {response.status_code}: expected JSON with {key!r}, got something else"
            )
        return body

    def missing(self, hashes: Sequence[str]) -> set[str]:
        """The subset of `hashes` the server does not have."""
        out: set[str] = set()
        for i in range(0, len(hashes), MISSING_CHUNK):
            response = self._post(
                "/api/v1/frames/missing", json={"sha256": list(hashes[i : i + MISSING_CHUNK])}
            )
            self._raise_for(response)
            out.update(self._json(response, "missing")["missing"])
        return out

    def send_batch(self, parts: Sequence[Part], metadata: dict[str, Any]) -> list[dict[str, Any]]:
        """Upload one batch; returns the server's per-image results (also for a 422 'all rejected')."""
        files = [("images", (p.filename, p.data, "image/jpeg")) for p in parts]
        response = self._post("/api/v1/batches", files=files, data={"metadata": json.dumps(metadata)})
        if response.status_code == 422:  # every image rejected: the same per-image answer
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("images"), list):
                images: list[dict[str, Any]] = body["images"]
                return images
        self._raise_for(response)
        images = self._json(response, "images")["images"]
        if not isinstance(images, list):
            raise TransientError("batch answer: expected a list of images")
        return images


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


@dataclass
class Retrier:
    """Runs an operation until it does not raise TransientError, at most `attempts` times.

    Between tries it waits a random time in [0, min(cap_s, base_s * 2**n)] (exponential backoff with full
    jitter), or the server's Retry-After (capped at `max_retry_after_s`) plus up to 10 % jitter. `sleep`
    waits and returns True when a stop was requested (then Interrupted is raised); `attempts=0` means
    unlimited.
    """

    attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 60.0
    max_retry_after_s: float = 900.0
    sleep: Callable[[float], bool] = field(default=lambda s: _sleep(s))
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            wait = min(retry_after, self.max_retry_after_s)
            return wait + self.rng.uniform(0.0, 0.1 * wait)
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** (failures - 1)))

    def run(self, operation: Callable[[int], T], what: str) -> T:
        """Call ``operation(attempt)`` (attempt counts from 0) until it succeeds."""
        attempt = 0
        while True:
            try:
                return operation(attempt)
            except Interrupted:
                raise
            except TransientError as exc:
                attempt += 1
                if self.attempts and attempt >= self.attempts:
                    log.warning("%s: giving up after %d tries: %s", what, attempt, exc)
                    raise
                wait = self.delay(attempt, exc.retry_after)
                log.warning("%s: %s; try %d in %.1f s", what, exc, attempt + 1, wait)
                if self.sleep(wait):
                    raise Interrupted(f"{what}: stopped while waiting to retry") from exc
