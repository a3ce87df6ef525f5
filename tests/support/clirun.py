"""`license-sync ARGS` in the test's own process: the exit code, stdout and stderr a user
would see, without a Python start-up and the imports of boto3 for every call. Commands
that must be a real process (signals, the console script) keep `subprocess`."""

from __future__ import annotations

import io
import logging
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

from sync.process.cli import main

NOISY = ("license_sync", "botocore", "boto3", "urllib3", "apscheduler")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in NOISY}
    try:
        with (
            mock.patch.dict(os.environ, env or {}, clear=env is not None),
            redirect_stdout(out),
            redirect_stderr(err),
        ):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse: --help, a usage error
                code = e.code if isinstance(e.code, int) else 1
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    return subprocess.CompletedProcess(
        ["license-sync", *args], code, out.getvalue(), err.getvalue()
    )
