"""HTTP behaviour against a scripted server (httpx.MockTransport): retries, Retry-After, 4xx handling."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from uploader.api import Api, Part, Retrier, parse_retry_after
from uploader.errors import AuthError, RequestRejected, TransientError
from uploader.journal import Journal
from uploader.progress import Progress
from uploader.sync import Options, Uploader
from uploader.tests.helpers import drive, write_photos


def scripted(answers: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


def test_retry_after_is_respected_and_backoff_has_jitter() -> None:
    transport, seen = scripted(
        [
            httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "7"}),
            httpx.Response(503, json={"detail": "maintenance"}, headers={"Retry-After": "2"}),
            httpx.ConnectError("down"),
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(200, text="<html>captive portal</html>"),
            httpx.Response(200, json={"missing": ["a" * 64]}),
        ]
    )
    api = Api("http://server", "rwv_x", transport=transport)
    sleeps: list[float] = []
    retrier = Retrier(
        attempts=10, base_s=1.0, cap_s=60.0, sleep=lambda s: bool(sleeps.append(s)), rng=random.Random(1)
    )
    assert retrier.run(lambda _: api.missing(["a" * 64]), "missing") == {"a" * 64}
    assert len(seen) == 6 and seen[0].headers["Authorization"] == "Bearer rwv_x"
    assert 7.0 <= sleeps[0] <= 7.7 and 2.0 <= sleeps[1] <= 2.2  # what the server asked for (+<=10 %)
    assert 0 <= sleeps[2] <= 4.0 and 0 <= sleeps[3] <= 8.0 and 0 <= sleeps[4] <= 16.0  # 2**n, full jitter
    assert len(set(sleeps)) == len(sleeps)


def test_backoff_is_capped_and_gives_up() -> None:
    r = Retrier(attempts=3, base_s=1.0, cap_s=5.0, sleep=lambda s: False, rng=random.Random(0))
    assert all(0 <= r.delay(n, None) <= 5.0 for n in range(1, 30))
    assert r.delay(1, 10_000) <= 900 * 1.1  # a silly Retry-After is capped
    calls: list[int] = []

    def always_down(attempt: int) -> None:
        calls.append(attempt)
        raise TransientError("down")

    with pytest.raises(TransientError):
        r.run(always_down, "x")
    assert calls == [0, 1, 2]


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0 and parse_retry_after(None) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (parse_retry_after(later) or 0) <= 61
    assert parse_retry_after("soon") is None


def test_bad_token_is_fatal_and_not_retried() -> None:
    transport, seen = scripted([httpx.Response(401, json={"detail": "invalid or missing vehicle token"})])
    api = Api("http://server", "rwv_wrong", transport=transport)
    with pytest.raises(AuthError, match="invalid or missing vehicle token"):
        Retrier(sleep=lambda s: False).run(lambda _: api.missing(["a" * 64]), "missing")
    assert len(seen) == 1


def test_a_request_rejected_for_one_photo_is_narrowed_down_to_it(tmp_path: Path) -> None:
    """A 4xx for the whole batch (not per image): halve until the one bad photo fails alone."""
    write_photos(tmp_path, drive(7))
    bad = "IMG_0004.jpg"
    batches: list[list[str]] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing"):
            return httpx.Response(200, json={"missing": json.loads(request.content)["sha256"]})
        names = re.findall(rb'filename="([^"]+)"', request.content)
        batches.append([n.decode() for n in names])
        if bad.encode() in names:
            return httpx.Response(400, json={"detail": "cannot parse part"})
        return httpx.Response(
            202, json={"images": [{"filename": n.decode(), "status": "queued", "frame_id": 1} for n in names]}
        )

    api = Api("http://server", "rwv_x", transport=httpx.MockTransport(server))
    with Journal(tmp_path / "j.sqlite") as journal:
        up = Uploader(tmp_path, journal, api, Options(batch_size=7), Retrier(sleep=lambda s: False))
        up.send_once(settle_s=0)
        assert up.stats.sent == 6 and up.stats.failed == 1
        sha = hashlib.sha256((tmp_path / bad).read_bytes()).hexdigest()
        assert up.stats.failures == [{"file": bad, "sha256": sha, "reason": "HTTP 400: cannot parse part"}]
        assert journal.counts()["failed"] == 1 and journal.counts()["sent"] == 6
    assert batches[0] == [f"IMG_{i:04d}.jpg" for i in range(7)] and [bad] in batches
    assert len(batches) <= 7  # halving: about 2 log2(n) requests, not n


def test_part_and_rejected_batch_answer() -> None:
    body = {
        "detail": "no image accepted",
        "images": [{"filename": "a.jpg", "status": "rejected", "reason": "x"}],
    }
    transport, _ = scripted(
        [httpx.Response(422, json=body), httpx.Response(422, json={"detail": "metadata"})]
    )
    api = Api("http://server", "rwv_x", transport=transport)
    assert api.send_batch([Part("a.jpg", b"x")], {}) == body["images"]
    with pytest.raises(RequestRejected, match="metadata"):
        api.send_batch([Part("a.jpg", b"x")], {})


def test_a_stop_request_ends_the_run_between_batches(tmp_path: Path) -> None:
    write_photos(tmp_path, drive(6))
    stop = threading.Event()

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing"):
            return httpx.Response(200, json={"missing": json.loads(request.content)["sha256"]})
        stop.set()  # SIGTERM arrives while the first batch is on its way
        names = re.findall(rb'filename="([^"]+)"', request.content)
        return httpx.Response(
            202, json={"images": [{"filename": n.decode(), "status": "queued"} for n in names]}
        )

    api = Api("http://server", "rwv_x", transport=httpx.MockTransport(server))
    with Journal(tmp_path / "j.sqlite") as journal:
        up = Uploader(tmp_path, journal, api, Options(batch_size=2), Retrier(sleep=stop.wait), stop=stop)
        up.send_once(settle_s=0)
        assert up.summary()["sent"] == 2 and up.summary()["pending"] == 4


def test_progress_bar_draws_on_a_terminal_only() -> None:
    stream = io.StringIO()
    bar = Progress(stream, enabled=True, width=10)
    bar.start(4)
    bar.advance(4, "sent 4")
    bar.finish()
    assert "[##########] 4/4 sent 4" in stream.getvalue()
    quiet = io.StringIO()
    assert Progress(quiet).enabled is False  # a StringIO is no terminal
