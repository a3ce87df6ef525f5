"""A short soak in the suite (benchmarks/soak.py runs the long one): random faults, and
after every cycle the invariants hold; no descriptor or thread is left behind."""

from __future__ import annotations

import logging

from benchmarks.soak import soak


def test_short_soak_keeps_the_invariants(aws_env, tmp_path, retry_sleeps):
    logging.getLogger("license_sync").setLevel(logging.CRITICAL)
    try:
        r = soak(cycles=120, seed=7, workdir=tmp_path)
    finally:
        logging.getLogger("license_sync").setLevel(logging.NOTSET)
    assert r.cycles == 120
    assert r.violations == []
    assert r.fds_end <= r.fds_start + 1
    assert r.threads_end == r.threads_start
    assert len(r.faults) >= 5  # the faults really were injected
