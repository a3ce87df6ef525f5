"""One builder for the policies the tests write: the studio most tests share (one FlexLM
source `lic`, one pool `nuke` sharing `nuke_r` through the limit `amount.nuke`), written
as the YAML a TD would write, and edited the way a TD edits it (the file rewritten whole,
then reloaded by the service)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

LIC = {"kind": "flexlm", "servers": ["27000@lic1"]}
RENDER_HOSTS = {"hosts": ["^render-"]}


def pool(limit: str = "amount.nuke", feature: str = "nuke_r", **settings: Any) -> Doc:
    """A pool of one feature of the source `lic`, with any of the policy's pool settings."""
    return {"limit": limit, "features": [{"source": "lic", "feature": feature}], **settings}


def policy(*farms: str, history: Path | None = None, pools: Doc | None = None, **top: Any) -> Doc:
    """A policy over `farms` (us-west-2), the source `lic` and the `nuke` pool unless
    `pools` or `sources=` say otherwise; `history` and `port` (metrics on loopback) set
    where it keeps its history and serves its metrics."""
    doc: Doc = {}
    port = top.pop("port", None)
    if history is not None:
        doc["history"] = {"path": str(history), **top.pop("history_settings", {})}
    if port is not None:
        doc["metrics"] = {"address": f"127.0.0.1:{port}"}
    if farms:
        doc["farms"] = [{"id": f, "region": "us-west-2"} for f in farms]
    doc["sources"] = top.pop("sources", {"lic": dict(LIC)})
    doc["pools"] = pools if pools is not None else {"nuke": pool()}
    return {**top, **doc}


def write_policy(path: Path, doc: Doc) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def edited(path: Path, change: Callable[[Doc], None]) -> str:
    """The policy at `path` as `change` edits it, as YAML text (the file left alone)."""
    doc = yaml.safe_load(path.read_text())
    change(doc)
    return yaml.safe_dump(doc, sort_keys=False)


def edit_policy(path: Path, change: Callable[[Doc], None]) -> None:
    """Read the policy, let `change` edit it in place, write it back whole."""
    path.write_text(edited(path, change))


def edit_pool(path: Path, name: str = "nuke", **settings: Any) -> None:
    edit_policy(path, lambda doc: doc["pools"][name].update(settings))


def edit_source(path: Path, name: str = "lic", **settings: Any) -> None:
    edit_policy(path, lambda doc: doc["sources"][name].update(settings))
