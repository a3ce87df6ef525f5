"""The cycle: observe → reconcile → act → record, the service that holds what lives
across cycles, serving it on an interval, and `restore` (docs/development.md, "The
layout")."""
