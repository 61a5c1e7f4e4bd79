"""Helpers of the browser test: the real service in a subprocess, headless Chromium, axe-core."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# README's screenshots are refreshed with ROADWATCH_SCREENSHOTS=docs/screenshots; by default the test
# writes them to a temporary folder, so a test run never changes tracked files.
SCREENSHOTS = Path(
    os.environ.get("ROADWATCH_SCREENSHOTS")
    or Path(os.environ.get("TMPDIR", "/tmp")) / "roadwatch-screenshots"
)
if not SCREENSHOTS.is_absolute():
    SCREENSHOTS = ROOT / SCREENSHOTS
CHROMIUM = os.environ.get("ROADWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# WCAG 2.0/2.1 A and AA rules (BITV 2.0 refers to WCAG 2.1 AA via EN 301 549), plus axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_service(database_url: str, data_dir: Path, timeout_s: float = 40.0) -> Iterator[str]:
    """``python -m service serve`` on a free port; yields its base URL and stops it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ROADWATCH_DATA_DIR": str(data_dir),
        "ROADWATCH_TILE_URL": "",  # no network in tests: the map runs without a background
    }
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited: {(data_dir / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/login", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the service did not start: {(data_dir / 'serve.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the current page (the script is injected from the vendored copy)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            if (result.passes.length < 10) { throw new Error('axe-core checked almost nothing'); }
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
        }""",
        AXE_TAGS,
    )


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"]) for v in violations
    )
