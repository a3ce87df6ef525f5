"""`lmutil`/`rlmutil` for the simulated license server: fetches its status over HTTP.

Usage (as the service runs it): `lmutil lmstat -a -c PORT@HOST`, with the simulator's
address in LICENSE_SYNC_SIM_URL. Written into the demo's folder as an executable.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
import urllib.request


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    url = os.environ.get("LICENSE_SYNC_SIM_URL")
    if not url or not argv or argv[0] not in ("lmstat", "rlmstat"):
        print(
            "usage: lmutil lmstat -a -c PORT@HOST  (LICENSE_SYNC_SIM_URL must be set)",
            file=sys.stderr,
        )
        return 2
    server = argv[argv.index("-c") + 1] if "-c" in argv else ""
    q = urllib.parse.urlencode({"c": server})
    try:
        with urllib.request.urlopen(f"{url}/_sim/{argv[0]}?{q}", timeout=10) as r:
            sys.stdout.write(r.read().decode())
    except OSError as e:
        print(f"lmutil: cannot reach the license server: {e}", file=sys.stderr)
        return 1
    return 0


def write_wrapper(path: str, sim_url: str) -> str:
    """An executable file that runs this module with the simulator's address set."""
    with open(path, "w") as fh:
        fh.write(
            f"#!{sys.executable}\n"
            "import os, sys\n"
            f"os.environ.setdefault('LICENSE_SYNC_SIM_URL', {sim_url!r})\n"
            "from sync.fakes.lmutil import main\n"
            "sys.exit(main())\n"
        )
    os.chmod(path, 0o755)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
