"""Running a license tool: argv only, a timeout that kills the whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sync.errors import SourceError

# A status listing of a very busy server is a few MB; cap what we keep so a runaway
# tool cannot take the service's memory with it.
MAX_OUTPUT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], float], RunResult]


def run_tool(argv: Sequence[str], timeout: float) -> RunResult:
    """Run `argv` (never through a shell); `SourceError` if it cannot start or times out."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout kills children too
        )
    except FileNotFoundError as e:
        raise SourceError(
            f"{argv[0]!r} not found: install it or set its path in the policy's source"
        ) from e
    except PermissionError as e:
        raise SourceError(f"{argv[0]!r} is not executable: {e.strerror}") from e
    except OSError as e:
        raise SourceError(f"cannot start {argv[0]!r}: {e}") from e
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        _kill_group(proc)
        raise SourceError(f"{' '.join(argv)!r} did not answer within {timeout:g}s; killed") from e
    finally:
        if proc.poll() is None:  # an exception other than the timeout: leave no orphan
            _kill_group(proc)
    return RunResult(
        tuple(argv),
        proc.returncode,
        out[:MAX_OUTPUT].decode("utf-8", errors="replace"),
        err[-4096:].decode("utf-8", errors="replace"),
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        proc.kill()
    # reap it, and close the pipes even if a grandchild still holds them open
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
