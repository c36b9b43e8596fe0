"""Observers of a run: memory readings (and, later, the FLOP ledger). Agents never import this package."""
