"""The memory sampler against direct psutil readings: peaks between rows are caught, threads end."""

import time

import numpy as np
import psutil
import pytest
import torch

from seer_bench.instrument.memory import MemorySampler


def test_a_transient_peak_between_rows_is_recorded_and_then_reset():
    proc = psutil.Process()
    with MemorySampler(torch.device("cpu"), period=0.02) as sampler:
        sampler.window()
        block = np.ones(300_000_000 // 8)  # 300 MB, touched
        held = proc.memory_info().rss  # the independent reading while it is held
        time.sleep(0.2)  # several sampling periods
        del block
        after = proc.memory_info().rss
        row = sampler.window()
        assert row.rss_peak_bytes >= 0.95 * held and held - after > 250_000_000
        assert row.rss_bytes < row.rss_peak_bytes - 200_000_000  # the row's reading alone would miss it
        assert sampler.window().rss_peak_bytes < row.rss_peak_bytes - 200_000_000  # reset by the last window
        assert sampler.samples > 5


def test_a_replay_peak_between_rows_is_kept_and_the_next_row_starts_from_what_is_held():
    sampler = MemorySampler(torch.device("cpu"))
    for nbytes in (5, 100, 20):  # pixels fill, then SEER converts them into fewer latent bytes
        sampler.note_replay(nbytes)
    assert sampler.window().replay_peak_bytes == 100
    assert sampler.window().replay_peak_bytes == 20  # nothing noted since: what is held now
    sampler.note_replay(30)
    assert sampler.window().as_row()["replay_peak_bytes"] == 30


def test_without_a_gpu_the_gpu_columns_are_empty_not_errors():
    with MemorySampler(torch.device("cpu"), period=0.05) as sampler:
        row = sampler.window().as_row()
    assert row["gpu_bytes"] == row["gpu_alloc_bytes"] == row["gpu_reserved_bytes"] == ""
    assert row["rss_bytes"] > 0 and row["rss_peak_bytes"] >= row["rss_bytes"] * 0.9


def test_the_thread_stops_when_the_run_raises():
    sampler = MemorySampler(torch.device("cpu"), period=0.01)
    with pytest.raises(RuntimeError):
        with sampler:
            assert sampler._thread.is_alive()
            raise RuntimeError("a failing run")
    assert not sampler._thread.is_alive()
