"""Shared test helpers: where the real captured responses live, and a fixture that needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()  # next to the repo, not inside it
FIXTURES = REPO / "fixtures"


@pytest.fixture
def realdata() -> Path:
    """The realdata directory; the test is skipped when it is not checked out."""
    if not REALDATA.is_dir():
        pytest.skip(f"realdata not present at {REALDATA}")
    return REALDATA


def real_bytes(path: Path) -> bytes:
    """The bytes of a real capture; the test is skipped when realdata is not checked out."""
    if not path.exists():
        pytest.skip(f"realdata not present: {path}")
    return path.read_bytes()
