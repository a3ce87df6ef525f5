"""The botocore client for Deadline: made with its retry and connection settings and its
answers bounded (`answers.py`), and AWS errors turned into `DeadlineError`s that say
what to do."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import botocore.loaders
import botocore.session
import botocore.utils
from botocore.config import Config

from sync.edges.answers import (
    bound_answers,
)
from sync.edges.deadline.shapes import (
    parse_timestamp,
)
from sync.values.errors import DeadlineError

_HINTS = {
    "AccessDeniedException": "grant the IAM action deadline:{action} (config/iam-policy.json)",
    "ResourceNotFoundException": "check the id in the policy; it may have been deleted",
    "ValidationException": "the request was rejected as invalid",
    "ThrottlingException": "Deadline throttled the call after retries; a longer interval helps",
    "ServiceQuotaExceededException": "a Deadline quota is reached",
    "InternalServerErrorException": "a Deadline service error; it is retried next cycle",
}


def make_client(
    region: str | None,
    endpoint_url: str | None = None,
    session: botocore.session.Session | None = None,
    attempts: int = 6,
    read_timeout: float = 20.0,
    retry_mode: str = "adaptive",
    pool_size: int = 10,
) -> Any:
    """A botocore `deadline` client with adaptive retries and the standard credential chain.

    The endpoint is botocore's to resolve (`AWS_ENDPOINT_URL_DEADLINE`, `AWS_ENDPOINT_URL`, a
    `[services]` section of the AWS config) unless one is given. A custom endpoint (the fake,
    a proxy) has no "management." host, so host prefixes are off there — unless the user
    said otherwise (`AWS_DISABLE_HOST_PREFIX_INJECTION`, `disable_host_prefix_injection`).
    """
    session = session or new_session()
    # ISO 8601 timestamps through the standard library: dateutil's general parser was
    # a tenth of a steady cycle's CPU at 10,000 jobs
    parsers = session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=parse_timestamp)
    if not (region or session.get_config_variable("region")):
        raise DeadlineError(
            "no AWS region: set the farm's `region:` in the policy, or AWS_REGION in the "
            "environment",
            code="NoRegion",
        )

    def client(**config: Any) -> Any:
        cfg = Config(
            retries={"mode": retry_mode, "total_max_attempts": attempts},
            connect_timeout=5,
            read_timeout=read_timeout,
            max_pool_connections=pool_size,
            user_agent_extra="license-sync",
            **config,
        )
        try:
            return session.create_client(
                "deadline", region_name=region, endpoint_url=endpoint_url, config=cfg
            )
        except botocore.exceptions.BotoCoreError as e:
            raise DeadlineError(f"cannot make a Deadline client: {e}", code="Client") from e

    made = client()
    user_choice = session.get_config_variable("disable_host_prefix_injection")
    if user_choice is None and not _aws_host(made.meta.endpoint_url):
        made = client(inject_host_prefix=False)
    bound_answers(made)
    return made


_LOADER: botocore.loaders.Loader | None = None


def new_session() -> botocore.session.Session:
    """A botocore session whose service models come from one loader a process: each
    session would read and parse the model files anew (80 ms a client)."""
    global _LOADER
    session = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader(session.get_config_variable("data_path"))
    session.register_component("data_loader", _LOADER)
    return session


def aws_regions() -> dict[str, str]:
    """Every region of every AWS partition, and its partition, as botocore's endpoint
    data lists them."""
    data = new_session().get_component("data_loader").load_data("endpoints")
    return {r: p["partition"] for p in data["partitions"] for r in p.get("regions", {})}


def _aws_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _throwaway_session() -> botocore.session.Session:
    """Signs calls to a fake endpoint: no credential chain is walked (no instance
    metadata, no profile), so nothing real is looked up or sent."""
    session = new_session()
    session.set_credentials("license-sync-demo", "license-sync-demo")
    return session


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _outcome(code: str) -> str:
    if code in ("ThrottlingException", "TooManyRequestsException", "Throttling"):
        return "throttled"
    if code in ("AccessDeniedException",):
        return "denied"
    if code in ("ResourceNotFoundException",):
        return "not_found"
    if code in ("ValidationException",):
        return "invalid"
    return "error"


def _to_error(
    e: botocore.exceptions.ClientError, operation: str, farm_id: str, kwargs: dict[str, Any]
) -> DeadlineError:
    err = e.response.get("Error", {})
    code = err.get("Code", "Unknown")
    message = err.get("Message", str(e))
    what = farm_id
    if "limitId" in kwargs:
        what += f" limit {kwargs['limitId']}"
    if "queueId" in kwargs:
        what += f" queue {kwargs['queueId']}"
    hint = _HINTS.get(code, "").format(action=operation.removeprefix("Batch"))
    return DeadlineError(
        f"{operation} on {what} failed: {code}: {message}" + (f" — {hint}" if hint else ""),
        code=code,
    )
