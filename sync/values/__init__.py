"""Plain values everything shares, importing nothing of the project: the domain's
values (`domain`), the errors (`errors`) and the settings' names (`settings`)."""
