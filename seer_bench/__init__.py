"""seer-bench: measure what a visual-RL method costs (FLOPs, memory, wall time) next to the return it buys."""

__version__ = "0.1.0"
