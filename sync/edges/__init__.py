"""The edges: the Deadline adapter and its bounded answers, the history, the metrics and
their server, the license sources. They know the domain, not the law or the cycle."""
