"""Observers of a run: the FLOP ledger (it watches an agent's modules run) and memory readings. Agents
never import this package."""
