"""Watching the policy file: a good edit is picked up without a restart, a bad one is
reported once and the last good policy keeps running (docs/operations.md)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from sync.edges.metrics import Metrics
from sync.policy import LoadedPolicy, Policy, parse_policy, policy_sha, read_policy_text
from sync.values.errors import PolicyError

log = logging.getLogger("license_sync")


class PolicyWatcher:
    def __init__(
        self,
        loaded: LoadedPolicy,
        metrics: Metrics,
        quiet: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.loaded = loaded
        self.monotonic = monotonic
        self._first_seen: tuple[str, float] | None = None  # a new content, and when seen
        self.metrics = metrics
        self.quiet = quiet  # seconds a changed file must be left alone before it is read
        self.requested = False  # SIGHUP: reload now, the file is said to be ready
        self._bad: str | None = None  # the sha (or error) of the bad file reported last

    def check(self) -> LoadedPolicy | None:
        """A changed, valid policy to install, or None to keep the one running.

        The file is hashed before it is parsed: an unchanged file (every cycle but the one
        after an edit) costs a read and a hash."""
        path = self.loaded.path
        forced, self.requested = self.requested, False
        try:
            before = os.stat(path)
            text = read_policy_text(path)
            after = os.stat(path)
        except (OSError, PolicyError) as e:
            self._reject(
                f"unreadable:{e}", e if isinstance(e, PolicyError) else PolicyError(f"{path}: {e}")
            )
            return None
        sha = policy_sha(text)
        if sha == self.loaded.sha:
            self._bad = None
            self.metrics.policy_file_valid.set(1)  # put back as it was
            return None
        if sha == self._bad:
            return None
        # a file still being written (an editor's truncate-then-write, a slow copy) waits
        # until it has been left alone for `quiet` seconds: half a policy is valid often
        # enough to uncap jobs for a cycle
        changing = (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, after.st_size)
        if not forced and (changing or not self._settled(sha, after.st_mtime)):
            log.debug("policy %s is being written; reloading it once it is left alone", path)
            return None
        try:
            candidate = parse_policy(text, path)
        except PolicyError as e:
            self._reject(sha, e)
            return None
        self._warn_restart_only(candidate)
        changed = what_changed(self.loaded.policy, candidate.policy)
        self.loaded, self._bad = candidate, None
        self.metrics.reloads.labels("ok").inc()
        self.metrics.policy_file_valid.set(1)
        log.info("policy %s reloaded (sha %s): %s", path, candidate.sha, changed)
        return candidate

    def _settled(self, sha: str, mtime: float) -> bool:
        """The file was left alone for `quiet` seconds: by its mtime, or — since an mtime
        can be in the future (`cp -p`, `rsync -t`, a clock stepped back) — by this same
        content having been seen that long ago on our own monotonic clock."""
        now = self.monotonic()
        if self._first_seen is None or self._first_seen[0] != sha:
            self._first_seen = (sha, now)
        age = time.time() - mtime
        return age >= self.quiet or now - self._first_seen[1] >= self.quiet

    def _warn_restart_only(self, candidate: LoadedPolicy) -> None:
        old, new = self.loaded.policy, candidate.policy
        for what, before, after in (
            ("metrics.address", old.metrics.address, new.metrics.address),
            ("history.path", old.history.path, new.history.path),
        ):
            if before != after:
                log.warning(
                    "policy %s changes %s from %s to %s: that takes effect at the next restart",
                    candidate.path,
                    what,
                    before,
                    after,
                )

    def _reject(self, key: str, e: PolicyError) -> None:
        """Count and log a bad policy file once, however many cycles it stays bad."""
        self.metrics.policy_file_valid.set(0)
        if key == self._bad:
            return
        self._bad = key
        self.metrics.reloads.labels("error").inc()
        log.error(
            "policy %s is invalid; keeping the last good policy (%s): %s",
            self.loaded.path,
            self.loaded.sha,
            str(e).replace("\n", " | "),
        )


def what_changed(old: Policy, new: Policy) -> str:
    """A reload in a line: pools added, removed, and edited (with the keys that changed)."""
    added = sorted(set(new.pools) - set(old.pools))
    removed = sorted(set(old.pools) - set(new.pools))
    edited = []
    for name in sorted(set(old.pools) & set(new.pools)):
        a, b = old.pools[name].model_dump(), new.pools[name].model_dump()
        keys = [k for k in a if a[k] != b.get(k)]
        if keys:
            edited.append(f"{name} ({', '.join(keys)})")
    others = [
        k
        for k in ("interval", "farms", "sources", "history", "metrics")
        if getattr(old, k) != getattr(new, k)
    ]
    parts = [
        f"pools added: {', '.join(added)}" if added else "",
        f"pools removed: {', '.join(removed)}" if removed else "",
        f"pools edited: {'; '.join(edited)}" if edited else "",
        f"also changed: {', '.join(others)}" if others else "",
    ]
    return "; ".join(p for p in parts if p) or "no setting changed (comments, layout)"
