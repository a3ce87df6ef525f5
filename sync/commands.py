"""Sub-commands other than `parse`: registered here to keep cli.py readable."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the service's commands to the parser."""
