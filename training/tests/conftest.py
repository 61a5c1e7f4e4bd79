"""Fixtures shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.tests.fakes import write_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight stand-in for the classic checkpoint (:mod:`training.tests.fakes`)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-yolov5.pt")
