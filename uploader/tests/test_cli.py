"""The command line: usage errors, token sources, JSON on stdout, signals, and no heavy imports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from uploader.cli import _check, _parser, main
from uploader.errors import UsageError
from uploader.journal import Journal
from uploader.tests.helpers import drive, write_photos

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "onnxruntime",
    "sqlalchemy",
    "psycopg",
    "fastapi",
    "torch",
    "cv2",
    "detector",
    "starlette",
    "uvicorn",
)


def test_cli_does_not_import_the_services_heavy_dependencies() -> None:
    code = f"import uploader.cli, sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"importing uploader.cli loaded {out.stdout.strip()}"


@pytest.mark.parametrize(
    "argv",
    [
        ["send"],
        ["send", "{dir}/nope"],
        ["send", "{dir}"],  # no server
        ["send", "{dir}", "--server", "ftp://x"],
        ["send", "{dir}", "--server", "https://x"],  # no token
        ["send", "{dir}", "--server", "https://x", "--token", "a", "--token-file", "{dir}/t"],
        ["send", "{dir}", "--server", "https://x", "--token-file", "{dir}/missing"],
        ["watch", "{dir}", "--server", "https://x", "--token", "a", "--every-m", "-1"],
        ["send", "{dir}", "--server", "https://x", "--token", "a", "--batch-size", "0"],
        ["send", "{dir}", "--server", "https://x", "--token", "a", "--track", "{dir}/none.gpx"],
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ROADWATCH_TOKEN", raising=False)
    monkeypatch.delenv("ROADWATCH_SERVER", raising=False)
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main([a.format(dir=tmp_path) for a in argv]))
    assert exc.value.code == 2
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("server", "extra", "refused"),
    [
        ("http://roadwatch.example", [], True),
        ("http://192.168.1.5:8000", [], True),
        ("http://roadwatch.example", ["--insecure"], False),
        ("https://roadwatch.example", [], False),
        ("http://127.0.0.1:8000", [], False),
        ("http://localhost:8000", [], False),
        ("http://[::1]:8000", [], False),
    ],
)
def test_plain_http_only_to_loopback_or_with_insecure(
    server: str, extra: list[str], refused: bool, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    argv = ["send", str(tmp_path), "--server", server, "--token", "rwv_a", "--dry-run", *extra]
    args = _parser().parse_args(argv)
    if refused:
        with pytest.raises(UsageError, match="unencrypted"):
            _check(args)
    else:
        _check(args)


def fake_server(tokens: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["Authorization"])
        if request.url.path.endswith("/missing"):
            return httpx.Response(200, json={"missing": json.loads(request.content)["sha256"]})
        return httpx.Response(401, json={"detail": "invalid or missing vehicle token"})

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("source", ["file", "env"])
def test_token_sources_and_auth_error(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    write_photos(tmp_path / "p", drive(2))
    (tmp_path / "token").write_text("rwv_from_file\n")
    monkeypatch.setenv("ROADWATCH_TOKEN", "rwv_from_env")
    argv = ["send", str(tmp_path / "p"), "--server", "https://x", "--settle-s", "0", "--retries", "1"]
    if source == "file":
        argv += ["--token-file", str(tmp_path / "token")]
    tokens: list[str] = []
    assert main(argv, fake_server(tokens)) == 1
    out = json.loads(capsys.readouterr().out)
    assert set(tokens) == {f"Bearer rwv_from_{source}"}
    assert out["error"].startswith("AuthError: HTTP 401") and out["pending"] == 2 and out["sent"] == 0


def test_status_and_journal_held_by_another_process(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write_photos(tmp_path, drive(2))
    with Journal(tmp_path / ".roadwatch-journal.sqlite"):
        assert (
            main(["send", str(tmp_path), "--server", "https://x", "--token", "rwv_a", "--settle-s", "0"]) == 1
        )
        out = json.loads(capsys.readouterr().out)
        assert "in use by another uploader" in out["error"]
        assert main(["status", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["journal"]["pending"] == 0 and out["failures"] == []


def test_watch_stops_on_sigterm_and_prints_its_summary(tmp_path: Path) -> None:
    write_photos(tmp_path, drive(3))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uploader",
            "watch",
            str(tmp_path),
            "--dry-run",
            "--poll-s",
            "0.2",
            "--no-progress",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ROADWATCH_TOKEN": ""},
    )
    try:
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["command"] == "watch" and out["would_send"] == 3 and out["dry_run"] is True
