"""Deadline Cloud, the only edge of the service that makes AWS clients: the client
(`client.py`), what its answers mean (`shapes.py`) and the adapter the cycle calls
(`adapter.py`, through whose `_call` every call goes)."""

from sync.edges.deadline.adapter import Deadline, factory_for
from sync.edges.deadline.client import aws_regions, make_client, new_session
from sync.edges.deadline.shapes import GONE, PAGE, JobLookup, parse_timestamp, resolve_limit

__all__ = [
    "GONE",
    "PAGE",
    "Deadline",
    "JobLookup",
    "aws_regions",
    "factory_for",
    "make_client",
    "new_session",
    "parse_timestamp",
    "resolve_limit",
]
