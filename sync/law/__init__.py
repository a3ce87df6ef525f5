"""The pure law: the control law, sharing a pool between jobs, allocation, the learned
reserve, and the words for every decision. No I/O, no clock, no AWS."""
