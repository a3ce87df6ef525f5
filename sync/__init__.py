"""license-sync: keeps Deadline Cloud limits in step with floating-license servers."""

__version__ = "0.1.0"
