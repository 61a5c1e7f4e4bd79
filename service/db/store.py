"""Content-addressed image store on a local folder: ``<root>/ab/cd/<sha256>.jpg``.

Writes are durable before they are acknowledged: the bytes go to a temporary file, which is
fsynced, renamed into place, and its folder fsynced. An S3-compatible store can replace this class
(same three methods) when images must be shared between machines.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if len(key) < 8 or "/" in key or ".." in key:
            raise ValueError(f"invalid image key {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, key: str, data: bytes) -> Path:
        """Store ``data`` under ``key`` durably; storing the same key again is a no-op."""
        target = self.path(key)
        if target.exists() and target.stat().st_size == len(data):
            os.utime(target)  # in use again: the janitor's age test for orphaned uploads starts over
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True
