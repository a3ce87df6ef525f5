"""The process: the command line (`cli`), the service built from a policy (`app`) and
how the log is written (`logging_setup`)."""
