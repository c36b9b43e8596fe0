"""The FLOP ledger against independent counts: torch's FlopCounterMode on real calls, and arithmetic."""

import numpy as np
import pytest
import torch

from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.instrument.flops import FlopLedger

from conftest import torch_macs

CFG = CurlConfig(batch_size=8)  # full-size networks, a small batch


def make(seed=0):
    torch.manual_seed(seed)
    return CurlSac((9, 100, 100), 2, CFG, torch.device("cpu"), seed)


def test_encoder_forward_at_batch_1_matches_the_layer_arithmetic():
    convs, side, channels = 0, 84, 9
    for k in range(4):  # 3x3 kernels, 32 filters, stride 2 then 1, no padding
        side = (side - 3) // (2 if k == 0 else 1) + 1
        convs += side * side * 32 * channels * 3 * 3
        channels = 32
    linear = side * side * 32 * 50
    assert (convs, linear) == (42_280_992, 1_960_000)  # the reference's 42.28 M + 1.96 M
    agent = make()
    encoder_passes = agent.act_passes()[:2]  # convs, then Linear + LayerNorm, at batch 1
    assert FlopLedger().price(encoder_passes) == pytest.approx(convs + linear, rel=1e-3)


@pytest.mark.parametrize("split", [None, "fc", "conv2", "conv4"])
@pytest.mark.parametrize("step", [0, 1])  # the actor and the target update on even steps only
def test_update_ledger_equals_torch_counter(filled_replay, split, step):
    agent = make()
    replay = filled_replay
    if split is not None:
        replay, _ = Seer(SeerConfig(freeze_at=1, num_copies=2, split=split), 10**9, seed=0, chunk=8, layout="paper",
                           transitions=filled_replay.spec, total_steps=100).freeze(
            agent, filled_replay, step=0)
    ledger = FlopLedger().price(agent.update_passes(step))
    measured = torch_macs(lambda: agent.update(replay, step))
    # The bar is 3%; the ledger is exact up to LayerNorm (fvcore counts it, torch does not) and the
    # bilinear term's documented F*F*B: measured differences are below 0.01%.
    assert ledger == pytest.approx(measured, rel=1e-3), (ledger, measured)


@pytest.mark.parametrize("split", ["fc", "conv2", "conv4"])
def test_act_and_encode_ledgers_equal_torch_counter(filled_replay, split):
    agent = make()
    obs = np.random.default_rng(0).integers(0, 256, (9, 100, 100), dtype=np.uint8)
    assert FlopLedger().price(agent.act_passes()) == pytest.approx(torch_macs(lambda: agent.act(obs, True)), rel=1e-3)
    Seer(SeerConfig(freeze_at=1, split=split), 10**9, seed=0, chunk=8, layout="paper",
         transitions=filled_replay.spec, total_steps=100).freeze(agent, filled_replay, step=0)
    pixels = np.stack([obs] * 5)
    measured = torch_macs(lambda: agent.encode(pixels, np.random.default_rng(0), 3, "float32"))
    assert FlopLedger().price(agent.encode_passes(5, 3)) == pytest.approx(measured, rel=1e-3)


def test_pricing_is_cached_and_leaves_the_rng_untouched(filled_replay):
    agent, ledger = make(), FlopLedger()
    torch.manual_seed(5)
    first = ledger.add("update", agent.update_passes(0))
    after_counting = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_counting, torch.rand(3))  # tracing ran real forwards, under a forked RNG
    assert ledger.add("update", agent.update_passes(0)) == first and ledger.totals["update"] == 2 * first
    assert ledger.total == 2 * first
