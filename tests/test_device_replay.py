"""The device-resident replay (`--replay-device device`) on a CPU, where its tensors are CPU tensors: the same
indices, crops and values as the host replay for the same random draws, exact byte accounting by place, and
checkpoints that load into either storage. Also the pinned-staging transfer's bookkeeping, run unpinned."""

import numpy as np
import pytest
import torch
from conftest import fill_random
from test_seer import digest_encoder

from seer_bench.device_replay import on_device, placed_bytes, storage_of
from seer_bench.replay import (
    CompactLatentReplay,
    CompactReplay,
    LatentSpec,
    PaperLatentReplay,
    PaperReplay,
    TransitionSpec,
)
from seer_bench.transfer import Transfer

CPU = torch.device("cpu")
SPEC = TransitionSpec((9, 20, 20), action_dim=2, frame_stack=3, episode_steps=10)
LSPEC = LatentSpec((("a", 9), ("b", 9)), copies=2, action_dim=2, dtype="float16")


def pair(cls, n: int, capacity: int = 64):
    """A host replay and its device twin, given the same `n` transitions (episodes of 7: wraparound and
    early eviction in the compact ring)."""
    host, device = cls(SPEC, capacity), on_device(cls)(SPEC, capacity, device=CPU)
    for replay in (host, device):
        fill_random(replay, n, seed=1, episode_steps=7)
    return host, device


def equal(a, b) -> bool:
    return np.array_equal(np.asarray(a), b.numpy() if isinstance(b, torch.Tensor) else b)


@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay])
@pytest.mark.parametrize("n", [40, 150])
def test_device_replay_samples_what_the_host_replay_samples(cls, n):
    host, device = pair(cls, n)
    assert storage_of(host) == "host" and storage_of(device) == "device"
    assert (host.tail, host.head, host.resident_bytes) == (device.tail, device.head, device.resident_bytes)
    rngs = np.random.default_rng(0), np.random.default_rng(0)
    idx_h, idx_d = (replay.sample_indices(128, r) for r, replay in zip(rngs, (host, device)))
    assert np.array_equal(idx_h, idx_d)
    offsets = np.random.default_rng(1).integers(0, 20 - 16, size=(128, 2))
    out = device.obs(idx_d, offsets, 16)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.device == CPU
    assert equal(host.obs(idx_h, offsets, 16), out)
    assert equal(host.next_obs(idx_h, offsets, 16), device.next_obs(idx_d, offsets, 16))
    assert equal(host.uncropped(idx_h, True), device.uncropped(idx_d, True))
    for key, values in host.scalars(idx_h).items():
        assert np.array_equal(values, device.scalars(idx_d)[key])


def tensor_and_array_bytes(replay) -> dict[str, int]:
    """Independent count: torch's and numpy's nbytes of every array the replay holds, by where it lives."""
    arrays = [array for array, _ in replay._arrays().values()]
    return {
        "host_bytes": sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)),
        "device_bytes": sum(a.untyped_storage().nbytes() for a in arrays if isinstance(a, torch.Tensor)),
    }


@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay, PaperLatentReplay, CompactLatentReplay])
@pytest.mark.parametrize("storage", ["host", "device"])
def test_bytes_by_place_are_the_real_arrays_nbytes(cls, storage):
    latent = cls in (PaperLatentReplay, CompactLatentReplay)
    spec, args = (LSPEC, (digest_encoder,)) if latent else (SPEC, ())
    make = on_device(cls) if storage == "device" else cls
    kwargs = {"device": CPU} if storage == "device" else {}
    replay = make(spec, 64, *args, 50, **kwargs)
    placed = placed_bytes(cls, spec, 64, 50, storage)
    assert placed == tensor_and_array_bytes(replay)
    assert sum(placed.values()) == replay.allocated_bytes == cls.total_bytes(spec, 64, 50)
    assert (placed["device_bytes"] > 0) == (storage == "device")


@pytest.mark.parametrize("latent_cls", [PaperLatentReplay, CompactLatentReplay])
@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay])
def test_device_latent_replay_converts_and_samples_what_the_host_one_does(cls, latent_cls):
    spec = TransitionSpec((9, 12, 12), action_dim=2, frame_stack=3, episode_steps=10)
    lspec = LatentSpec((("a", 9), ("b", 9)), copies=2, action_dim=2)
    host, device = cls(spec, 64), on_device(cls)(spec, 64, device=CPU)
    latents = (
        latent_cls(lspec, 100, digest_encoder),
        on_device(latent_cls)(lspec, 100, digest_encoder, device=CPU),
    )
    converted = []
    for pixels, latent in zip((host, device), latents):
        fill_random(pixels, 150, seed=3, episode_steps=7)
        converted.append(latent.fill_from(pixels, chunk=16))
        rng = np.random.default_rng(4)
        for _ in range(30):  # new transitions are encoded on add
            obs, nxt = rng.integers(0, 256, (2, 9, 12, 12), dtype=np.uint8)
            latent.add(obs, np.ones(2), 1.0, nxt, terminal=False, last=bool(rng.random() < 0.2))
    h, d = latents
    assert converted[0] == converted[1] > 0
    assert (h.tail, h.head, h.resident_bytes, h.encoded) == (d.tail, d.head, d.resident_bytes, d.encoded)
    rng = np.random.default_rng(5)
    idx, copy = h.sample_indices(128, rng), rng.integers(0, 2, 128)
    for next_obs in (False, True):
        want, got = h.latents(idx, copy, next_obs), d.latents(idx, copy, next_obs)
        assert all(isinstance(v, torch.Tensor) and equal(want[k], v) for k, v in got.items())


@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay])
def test_checkpoints_load_across_storages(cls):
    host, device = pair(cls, 150)
    saved_h, saved_d = host.state_dict(), device.state_dict()
    assert saved_h["counters"] == saved_d["counters"]
    for name, tensor in saved_h["arrays"].items():
        got = saved_d["arrays"][name]
        assert got.device == CPU and torch.equal(tensor, got)
        assert got.untyped_storage().nbytes() == got.nbytes  # only the rows written, not the whole ring
    fresh_d, fresh_h = on_device(cls)(SPEC, 64, device=CPU), cls(SPEC, 64)
    fresh_d.load_state_dict(saved_h)
    fresh_h.load_state_dict(saved_d)
    idx = host.sample_indices(64, np.random.default_rng(2))
    offsets = np.zeros((64, 2), np.int64)
    assert equal(host.obs(idx, offsets, 16), fresh_d.obs(idx, offsets, 16))
    assert equal(host.obs(idx, offsets, 16), fresh_h.obs(idx, offsets, 16))


@pytest.mark.parametrize("cls", [PaperLatentReplay, CompactLatentReplay])
def test_latent_checkpoints_load_across_storages(cls):
    """A frozen run resumed with the other storage: the latents and the ring come back the same."""
    spec = TransitionSpec((9, 12, 12), action_dim=2, frame_stack=3, episode_steps=10)
    lspec = LatentSpec((("a", 9), ("b", 9)), copies=2, action_dim=2)
    pixels, host = PaperReplay(spec, 64), cls(lspec, 100, digest_encoder)
    fill_random(pixels, 90, seed=3, episode_steps=7)
    host.fill_from(pixels, chunk=16)
    device = on_device(cls)(lspec, 100, digest_encoder, device=CPU)
    device.load_state_dict(host.state_dict())
    back = cls(lspec, 100, digest_encoder)
    back.load_state_dict(device.state_dict())
    idx, copy = host.sample_indices(64, np.random.default_rng(6)), np.ones(64, np.int64)
    for replay in (device, back):
        assert (replay.tail, replay.head, replay.resident_bytes) == (
            host.tail,
            host.head,
            host.resident_bytes,
        )
        got, want = replay.latents(idx, copy, True), host.latents(idx, copy, True)
        assert all(equal(want[k], v) for k, v in got.items())


def test_staged_transfer_copies_values_and_never_aliases_its_staging_buffer():
    """The CUDA path (pinned staging, non_blocking copies) run on a CPU without pinning: values arrive
    equal, converted after the copy, and a later batch in the same field does not change an earlier one."""
    transfer, plain = Transfer(CPU, staged=True), Transfer(CPU)
    assert transfer.staged and not plain.staged
    first = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    a = transfer("obs", first, torch.float32)
    b = transfer("obs", first[::-1] + 1)
    assert a.dtype == torch.float32 and equal(first.astype(np.float32), a)
    assert b.dtype == torch.uint8 and equal(first[::-1] + 1, b)
    assert torch.equal(plain("obs", first, torch.float32), a)
    on_device_already = torch.ones(3)
    assert transfer("x", on_device_already) is on_device_already


def measures_the_machine(column: str) -> bool:
    """Columns of clocks (`*_s`, `time_*`, `update_s_mean`) and process memory (`rss_*`), not of what the run
    computed."""
    return column.endswith("_s") or column.startswith(("time_", "rss_")) or column == "update_s_mean"


def curl_spec(layout: str):
    from conftest import tiny_spec

    from seer_bench.agents.seer import SeerConfig

    overrides = {"batch_size": 8, "init_steps": 10, "hidden_dim": 64}
    seer = SeerConfig(freeze_at=20, num_copies=2)
    return tiny_spec("curl+seer", seer, agent_overrides=overrides, replay_layout=layout)


def seer_specs():
    """One tiny run through T_f of each agent with SEER (curl in both pixel layouts)."""
    from test_der import atari_spec
    from test_drqv2 import drq_tiny_spec

    return {
        "curl-paper": lambda: curl_spec("paper"),
        "curl-compact": lambda: curl_spec("compact"),
        "drqv2": lambda: drq_tiny_spec("drqv2+seer"),
        "der": lambda: atari_spec("der+seer"),
    }


@pytest.mark.parametrize("case", ["curl-paper", "curl-compact", "drqv2", "der"])
def test_a_run_with_a_device_replay_records_what_the_host_replay_run_records(tmp_path, case):
    """A tiny real run through T_f, with the replay on the host and then on the (CPU) device: every metric
    that is not a clock or process memory reading is identical, and config.json says where bytes live."""
    import json
    from dataclasses import replace

    import pandas as pd

    from seer_bench.runner import check_spec, run

    records = {}
    for storage in ("host", "device"):
        spec = replace(seer_specs()[case](), replay_device=storage)
        check_spec(spec)
        run(spec, tmp_path / storage)
        path = next((tmp_path / storage / "runs").glob("*/*/*/*"))
        records[storage] = [pd.read_csv(path / f) for f in ("metrics.csv", "train.csv")]
        records[storage].append(json.loads((path / "config.json").read_text()))
    (host_m, host_t, host_c), (dev_m, dev_t, dev_c) = records["host"], records["device"]
    assert dev_m["frozen"].tolist()[-1] == 1
    same = [c for c in host_m.columns if not measures_the_machine(c)]
    pd.testing.assert_frame_equal(host_m[same], dev_m[same])
    pd.testing.assert_frame_equal(host_t, dev_t)
    assert host_c["replay"]["storage"] == "host" and dev_c["replay"]["storage"] == "device"
    for config in (host_c, dev_c):
        replay, seer = config["replay"], config["seer"]
        assert replay["host_bytes"] + replay["device_bytes"] == replay["allocated_bytes"]
        assert seer["host_bytes_after"] + seer["device_bytes_after"] == seer["allocated_bytes_after"]
    assert host_c["replay"]["device_bytes"] == 0 < dev_c["replay"]["device_bytes"]
    assert dev_c["seer"]["device_bytes_after"] > 0 and dev_c["spec"]["replay_device"] == "device"


def test_an_agent_without_device_replay_support_is_refused_before_training():
    from conftest import tiny_spec

    from seer_bench.errors import ConfigError
    from seer_bench.runner import check_spec

    spec = tiny_spec("examples.pixel_ddpg:PixelDdpg", replay_device="device")
    with pytest.raises(ConfigError, match="does not take batches from a device replay"):
        check_spec(spec)
