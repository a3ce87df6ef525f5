"""The farm state machine at length: the suite runs 200 examples in CI (100 elsewhere),
this runs 5,000.

    python benchmarks/farm_machine.py [--examples 5000]

Runs tests/cycle/test_farm_state_machine.py under pytest with LICENSE_SYNC_MACHINE_EXAMPLES set
(hypothesis is derandomized there, so a run replays) and prints the examples, the steps
run, the wall time and the outcome; a failing example is printed whole by hypothesis.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000)
    args = ap.parse_args()
    env = {**os.environ, "LICENSE_SYNC_MACHINE_EXAMPLES": str(args.examples)}
    t0 = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-show-statistics",
            "-n",
            "0",  # one test, in this process: hypothesis prints its statistics only here
            "-p",
            "no:logging",
            "tests/cycle/test_farm_state_machine.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    stats = re.findall(
        r"- (\d+ passing examples.*|Typical runtimes.*|Stopped because.*)", run.stdout
    )
    print(f"farm state machine: {args.examples} examples asked, wall {wall:.0f} s")
    for line in stats:
        print(f"  {line}")
    print("  result:", "all invariants held" if run.returncode == 0 else "FAILED")
    if run.returncode != 0:  # the failing example, as hypothesis printed it
        start = run.stdout.find("= FAILURES =")
        print(run.stdout[start : start + 20000] if start >= 0 else run.stdout[-20000:])
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
