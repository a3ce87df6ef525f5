"""license-sync: keeps Deadline Cloud limits in step with floating-license servers."""

from importlib.metadata import PackageNotFoundError, version

try:  # one version, the package's own (pyproject.toml): --version and build_info say it
    __version__ = version("deadline-license-sync")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
