"""Fixtures of the unit tests."""
from __future__ import annotations

import pytest

from annotation.core.result_formats import arrow


@pytest.fixture
def small_blocks(monkeypatch):
    """Arrow blocks of a few rows, so one file crosses many blocks and a fast path's fallback starts mid-file."""
    monkeypatch.setattr(arrow, "ARROW_BLOCK_BYTES", 512)
