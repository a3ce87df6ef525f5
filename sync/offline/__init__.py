"""The offline tools: the farm as a cycle left it (`plan --against`), what of people it
keeps, replaying the history, the simulation. Pure."""
