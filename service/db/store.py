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
        self._private = False  # root made owner-only (0700) in this process

    def _folder(self, folder: Path) -> None:
        """Create ``folder`` and its parents up to the root, owner-only (photos are personal data)."""
        if not self._private:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)  # also a root made earlier with the default 0755
            self._private = True
        for level in (folder.parent, folder):
            level.mkdir(mode=0o700, exist_ok=True)

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
        self._folder(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")  # mode 0600
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
