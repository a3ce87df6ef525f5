"""The exceptions license-sync raises. The CLI turns each into one line and an exit code."""


class SyncError(Exception):
    """Base class: a failure license-sync understands and can explain."""


class SourceError(SyncError):
    """A license source could not be read."""


class ParseError(SyncError):
    """A license tool's output could not be understood."""


class PolicyError(SyncError):
    """The policy file is invalid."""


class DeadlineError(SyncError):
    """A Deadline Cloud API call failed."""

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.code = code  # the API's error code, e.g. "ThrottlingException"


class HistoryError(SyncError):
    """The SQLite history could not be read or written."""


class StateError(HistoryError):
    """The durable memory's table (DynamoDB) could not be read or written, or this replica
    does not hold the lease writing it needs: handled wherever the history's would be."""


class HistoryLocked(SyncError):
    """Another license-sync process writes to this history: a second one must not start."""
