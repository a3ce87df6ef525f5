"""Where the tests find the checkout, the fake license tools and the captured fixtures,
wherever in tests/ the test module lives."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
BIN = TESTS / "bin"
FIXTURES = TESTS / "fixtures"
