from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    """A fixture file's text, line endings untouched."""
    return (FIXTURES / name).read_bytes().decode("utf-8")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
