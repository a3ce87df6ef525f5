"""The record format the history stores: a cycle's observation as rows and back, and the
redaction of the artists it names. Below both the live cycle, which writes it, and the
offline tools (`plan --against`, `replay`), which read it back."""
