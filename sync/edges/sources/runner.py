"""Running a license tool: argv only, a timeout that kills the whole process group. Errors
name the tool, never its arguments: a `command` source may pass a password."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sync.values.errors import SourceError

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
EXIT_GRACE = 0.5  # seconds the pipes may stay open once the tool itself has exited
EXIT_POLL = 0.1  # how often the reading looks whether it has


def run_tool(argv: Sequence[str], timeout: float, max_output: int = MAX_OUTPUT) -> RunResult:
    """Run `argv` (never through a shell); `SourceError` if it cannot start, times out, or
    writes more than `max_output` bytes (read in chunks: a tool that writes forever is
    stopped at the cap, not read whole)."""
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
        out, err = _read(proc, argv, time.monotonic() + timeout, timeout, max_output)
    finally:
        if proc.poll() is None:  # an error, the timeout or the cap: leave no orphan
            _kill_group(proc)
    return RunResult(
        tuple(argv),
        proc.returncode,
        out.decode("utf-8", errors="replace"),
        err[-4096:].decode("utf-8", errors="replace"),
    )


def _read(
    proc: subprocess.Popen[bytes],
    argv: Sequence[str],
    deadline: float,
    timeout: float,
    max_output: int,
) -> tuple[bytes, bytes]:
    """Both pipes until the tool closes them, keeping stdout whole and stderr's tail."""
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    exited: float | None = None  # when the tool itself exited
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                raise SourceError(f"{argv[0]!r} did not answer within {timeout:g}s; killed")
            if exited is None and proc.poll() is not None:
                exited = now
            if exited is not None and now - exited >= EXIT_GRACE:
                # a child it left behind holds the pipes: the tool's answer is all there
                _kill_group(proc)
                break
            for key, _ in sel.select(min(left, EXIT_POLL)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if key.data is err and len(err) > 8192:
                    del err[:-4096]
                if len(out) > max_output:
                    raise SourceError(
                        f"{argv[0]!r} wrote more than {max_output // (1 << 20)} MiB; "
                        "killed (a status listing is a few MB)"
                    )
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as e:
        raise SourceError(f"{argv[0]!r} did not exit within {timeout:g}s; killed") from e
    return bytes(out), bytes(err)


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
