"""The measured FLOP ledger against independent counts: torch's FlopCounterMode on the same real calls, and
arithmetic. Nothing here tells the ledger what a call computes: it watches the call."""

import numpy as np
import pytest
import torch
from conftest import ledger_and_torch

from seer_bench.agents.contract import networks
from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.instrument import flops
from seer_bench.instrument.flops import FlopLedger

CFG = CurlConfig(batch_size=8)  # full-size networks, a small batch


def make(seed=0, cls=CurlSac):
    torch.manual_seed(seed)
    return cls((9, 100, 100), 2, CFG, torch.device("cpu"), seed)


def freeze(agent, replay, split, copies=2):
    seer = Seer(
        SeerConfig(freeze_at=1, num_copies=copies, split=split),
        10**9,
        seed=0,
        chunk=8,
        layout="paper",
        transitions=replay.spec,
        total_steps=100,
    )
    return seer.freeze(agent, replay, step=0)[0]


def test_encoder_forward_at_batch_1_matches_the_layer_arithmetic():
    convs, side, channels = 0, 84, 9
    for k in range(4):  # 3x3 kernels, 32 filters, stride 2 then 1, no padding
        side = (side - 3) // (2 if k == 0 else 1) + 1
        convs += side * side * 32 * channels * 3 * 3
        channels = 32
    linear = side * side * 32 * 50
    assert (convs, linear) == (42_280_992, 1_960_000)  # the reference's 42.28 M + 1.96 M
    agent = make()
    with torch.no_grad():
        _, price = FlopLedger(networks(agent)).measure(agent.critic.encoder, torch.zeros(1, 9, 84, 84))
    assert price == pytest.approx(convs + linear, rel=1e-3)  # + LayerNorm, which fvcore counts


@pytest.mark.parametrize("split", [None, "fc", "conv2", "conv4"])
@pytest.mark.parametrize("step", [0, 1])  # the actor and the target update on even steps only
def test_update_ledger_equals_torch_counter(filled_replay, split, step):
    agent = make()
    replay = filled_replay if split is None else freeze(agent, filled_replay, split)
    ledger, measured = ledger_and_torch(agent, lambda: agent.update(replay, step))
    # Exact up to LayerNorm (fvcore counts it, torch does not) and the bilinear term's documented F*F*B.
    assert ledger == pytest.approx(measured, rel=1e-3), (ledger, measured)


@pytest.mark.parametrize("split", ["fc", "conv2", "conv4"])
def test_act_and_encode_ledgers_equal_torch_counter(filled_replay, split):
    agent = make()
    obs = np.random.default_rng(0).integers(0, 256, (9, 100, 100), dtype=np.uint8)
    ledger, measured = ledger_and_torch(agent, lambda: agent.act(obs, 0, eval_mode=False))
    assert ledger == pytest.approx(measured, rel=1e-3)
    freeze(agent, filled_replay, split)
    pixels = np.stack([obs] * 5)
    ledger, measured = ledger_and_torch(
        agent, lambda: agent.encode(pixels, np.random.default_rng(0), 3, "float32")
    )
    assert ledger == pytest.approx(measured, rel=1e-3)


class CurlWithAuxiliaryLoss(CurlSac):
    """A researcher's variant: one more encoder pass per update, an auxiliary loss on the critic's encoder.
    Nothing else in seer-bench is told about it."""

    def update(self, replay, step):
        metrics = super().update(replay, step)
        obs = self.sample(replay)["obs"]
        loss = self.critic.encoder(obs).pow(2).mean()
        self.critic_encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_encoder_opt.step()
        return {**metrics, "aux_loss": loss.item()}


@pytest.mark.parametrize("step", [0, 1])
def test_a_subclass_with_an_extra_encoder_pass_is_priced_as_it_runs(filled_replay, step):
    base, variant = make(), make(cls=CurlWithAuxiliaryLoss)
    base_price, _ = ledger_and_torch(base, lambda: base.update(filled_replay, step))
    price, measured = ledger_and_torch(variant, lambda: variant.update(filled_replay, step))
    assert price == pytest.approx(measured, rel=1e-3)
    # The extra pass: the encoder forward, then its backward: 2x for every layer but the first conv, whose
    # input (pixels) needs no gradient (1x). Multiply-adds per sample, from the layer arithmetic above.
    encoder, conv1 = 42_280_992 + 1_960_000, 41 * 41 * 32 * 9 * 3 * 3
    assert price - base_price == pytest.approx(CFG.batch_size * (3 * encoder - conv1), rel=1e-3)


def test_observing_a_run_changes_nothing_it_computes(filled_replay):
    observed, plain = make(), make()
    ledger = FlopLedger(networks(observed))
    for step in range(4):
        for agent in (observed, plain):  # the same batch and policy noise for both
            torch.manual_seed(step)
            agent.rng = np.random.default_rng(step)
            if agent is observed:
                ledger.observe("update", ("update", step % 2), agent.update, filled_replay, step)
            else:
                agent.update(filled_replay, step)
    for name, module in networks(observed).items():
        for (k, a), b in zip(module.state_dict().items(), networks(plain)[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"
    prices = [ledger.prices[("update", p)] for p in (0, 1)]
    # the actor step on even steps
    assert ledger.totals["update"] == 2 * sum(prices) and prices[0] > prices[1]


def test_a_call_that_changes_under_its_key_is_caught_when_observed_again(filled_replay, monkeypatch):
    monkeypatch.setattr(flops, "REOBSERVE_EVERY", 3)
    agent = make(cls=CurlWithAuxiliaryLoss)
    ledger = FlopLedger(networks(agent))
    plain_update = super(CurlWithAuxiliaryLoss, agent).update
    # the same key for a call whose work grows at the 3rd call (the auxiliary pass starts): it is re-observed
    for fn in (plain_update, plain_update, agent.update):
        ledger.observe("update", "one key", fn, filled_replay, 1)
        if fn is plain_update and ledger.price_changes == 0:
            plain = ledger.prices["one key"]
    assert ledger.price_changes == 1 and ledger.prices["one key"] > plain
    assert ledger.totals["update"] == 2 * plain + ledger.prices["one key"]
