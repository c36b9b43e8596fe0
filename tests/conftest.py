import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from seer_bench.replay import PaperReplay, TransitionSpec

torch.set_num_threads(2)


def fill_random(replay, n: int, seed: int = 0, episode_steps: int = 10) -> None:
    """Add `n` transitions of random pixels, stacked like the env stacks frames, episodes of `episode_steps`."""
    rng = np.random.default_rng(seed)
    c = replay.spec.frame_shape
    k = replay.spec.frame_stack
    frames = None
    for t in range(n):
        if frames is None:
            first = rng.integers(0, 256, c, dtype=np.uint8)
            frames = [first] * k
        obs = np.concatenate(frames)
        frames = frames[1:] + [rng.integers(0, 256, c, dtype=np.uint8)]
        last = (t + 1) % episode_steps == 0
        replay.add(obs, rng.uniform(-1, 1, replay.spec.action_dim), float(rng.normal()), np.concatenate(frames),
                   terminal=bool(rng.random() < 0.05), last=last)
        if last:
            frames = None


@pytest.fixture
def filled_replay():
    spec = TransitionSpec((9, 100, 100), action_dim=2, frame_stack=3, episode_steps=10)
    replay = PaperReplay(spec, 64)
    fill_random(replay, 64)
    return replay


def torch_macs(fn) -> float:
    """Multiply-adds of what really runs, forward and backward, by torch's own counter (2 flops each)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 2


class OpLog(TorchDispatchMode):
    """Every operator that runs, at the dispatcher (below modules, hooks and custom autograd functions)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))
