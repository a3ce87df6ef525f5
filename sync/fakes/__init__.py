"""Simulated Deadline Cloud endpoint and license server, for `demo` and the tests."""
