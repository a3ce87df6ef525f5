"""One module a command (or a group of them); `cli.py` builds the parsers and calls in."""

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
