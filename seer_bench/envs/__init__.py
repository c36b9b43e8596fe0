"""Environments with pixel observations, seeded and headless."""

from seer_bench.envs.dmc import DMC_TASKS, KNOWN_TASKS, DMCPixels, parse_task

__all__ = ["DMC_TASKS", "KNOWN_TASKS", "DMCPixels", "parse_task"]
