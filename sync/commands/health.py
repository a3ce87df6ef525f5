"""`license-sync healthcheck`: the container's HEALTHCHECK — is the running service's
/healthz answering 200 on the address its policy gives?"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from sync.commands import EXIT_ERROR, EXIT_OK

DEFAULT = "0.0.0.0:9462"  # as the policy's metrics.address defaults


def healthcheck(args: argparse.Namespace) -> int:
    address = args.address or _policy_address(args.config) or DEFAULT
    url = f"http://{_local(address)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as r:
            print(r.read().decode().strip())
            return EXIT_OK
    except urllib.error.HTTPError as e:
        print(f"{url}: {e.code} {e.read().decode().strip()}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as e:
        print(f"{url}: {getattr(e, 'reason', e)}", file=sys.stderr)
    return EXIT_ERROR


def _policy_address(path: str | None) -> str | None:
    """metrics.address as the file says it, read leniently: an invalid edit the service
    refused must not make a healthy service look dead."""
    if path is None:
        return None
    try:
        data: Any = yaml.safe_load(Path(path).read_text())
        value = data["metrics"]["address"]
    except (OSError, yaml.YAMLError, TypeError, KeyError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def _local(address: str) -> str:
    """Where to ask: a wildcard bind is asked on loopback."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        return f"127.0.0.1:{port}"
    if host == "::":
        return f"[::1]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
