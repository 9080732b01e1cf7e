"""Fixtures of the fresh-machine tests (the README commands on a clean Debian machine, a bare clone)."""
