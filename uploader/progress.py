"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self.total = self.done = 0
        self._drawn = 0.0

    def start(self, total: int) -> None:
        self.total, self.done = total, 0
        self._draw("", force=True)

    def advance(self, n: int, note: str) -> None:
        self.done += n
        self._draw(note, force=self.done >= self.total)

    def _draw(self, note: str, force: bool = False) -> None:
        if not self.enabled or not self.total or (not force and time.monotonic() - self._drawn < 0.1):
            return
        self._drawn = time.monotonic()
        filled = self.width * min(self.done, self.total) // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {note}\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.total:
            self.stream.write("\n")
            self.stream.flush()
        self.total = 0
