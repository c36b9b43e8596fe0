"""`bench.py profile`: FLOPs, bytes and capacities per agent and phase, checked against arithmetic."""

import json

import numpy as np
import pytest

from seer_bench.cli import main


def test_profile_json_rows_for_curl_and_curl_seer(capsys, tmp_path):
    argv = ["profile", "--suite", "dmc6", "--envs", "cartpole-swingup", "--budget-gb", "0.6", "--json"]
    code = main([*argv, "--out", str(tmp_path)])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    # --out keeps the same rows beside a sweep's records, and the table
    assert json.loads((tmp_path / "profile.json").read_text()) == rows
    table = (tmp_path / "profile.md").read_text().splitlines()
    assert table[0].split()[:6] == ["agent", "env", "budget", "phase", "layout", "split"]
    assert sum(line.split()[1:2] == ["cartpole-swingup"] for line in table) == len(rows)  # a line per row
    keys = {
        "agent",
        "env",
        "phase",
        "layout",
        "update_flops",
        "act_flops",
        "bytes_per_transition",
        "capacity",
    }
    assert all(keys <= set(r) for r in rows)
    by = {(r["agent"], r["phase"], r["layout"]): r for r in rows}
    assert set(by) == {
        ("curl", "pixels", "paper"),
        ("curl", "pixels", "compact"),
        ("curl+seer", "pixels", "paper"),
        ("curl+seer", "pixels", "compact"),
        ("curl+seer", "frozen", "latent"),
    }

    # Bytes: numpy's itemsizes times the shapes the replay arrays have (cartpole: 9x100x100 uint8, 1 action).
    # action (1), reward, not_done; last
    scalars = np.dtype(np.float32).itemsize * 3 + np.dtype(np.uint8).itemsize
    paper = 2 * 9 * 100 * 100 * np.dtype(np.uint8).itemsize + scalars
    latent = 2 * 2 * 4 * 50 * np.dtype(np.float32).itemsize + scalars  # critic+actor, obs+next, 4 copies
    assert by["curl", "pixels", "paper"]["bytes_per_transition"] == paper == 180_013
    assert by["curl+seer", "frozen", "latent"]["bytes_per_transition"] == latent == 3_213
    assert by["curl", "pixels", "paper"]["capacity"] == 600_000_000 // paper
    assert by["curl+seer", "frozen", "latent"]["capacity"] == 600_000_000 // latent
    assert by["curl", "pixels", "compact"]["capacity"] > 5 * by["curl", "pixels", "paper"]["capacity"]

    # Acting: the encoder (44.24 M multiply-adds) and the policy MLP 50 -> 1024 -> 1024 -> 2, at batch 1.
    act = 44_240_992 + 50 * 1024 + 1024 * 1024 + 1024 * 2
    assert by["curl", "pixels", "paper"]["act_flops"] == pytest.approx(act, rel=1e-4)
    # Before T_f curl+seer is curl; after it an update skips every conv: a small fraction of the FLOPs.
    assert by["curl+seer", "pixels", "paper"]["update_flops"] == by["curl", "pixels", "paper"]["update_flops"]
    assert (
        by["curl+seer", "frozen", "latent"]["update_flops"]
        < 0.05 * by["curl", "pixels", "paper"]["update_flops"]
    )


def test_profile_table_has_units_and_ratios(capsys):
    code = main(
        [
            "profile",
            "--suite",
            "dmc6",
            "--scale",
            "smoke",
            "--envs",
            "cartpole-swingup",
            "--agents",
            "curl+seer",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for text in (
        "update GFLOP",
        "act MFLOP",
        "bytes/transition",
        "after T_f an update costs",
        "x the transitions",
    ):
        assert text in out


def test_profile_rejects_bad_input_before_any_work(capsys):
    assert main(["profile", "--suite", "dmc6", "--envs", "cartpole-jump"]) == 2
    assert "unknown env 'cartpole-jump'" in capsys.readouterr().err


def test_profile_prices_der_and_its_compact_latents(capsys):
    code = main(["profile", "--suite", "atari8", "--envs", "alien", "--budget-gb", "0.35", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    by = {(r["agent"], r["phase"], r["layout"]): r for r in rows}
    # Acting: conv 1.28 M multiply-adds, then the dueling noisy streams 576 -> 256 -> 51 and 576 -> 256 -> 18
    # x 51.
    act = 1_280_000 + 2 * 576 * 256 + 256 * 51 + 256 * 18 * 51
    assert by["der", "pixels", "compact"]["act_flops"] == act == 1_822_976
    # Bytes: one 84x84 uint8 frame per transition, its int64 index, int32 action, float32 reward and not_done,
    # uint8 last; the compact ring also keeps 4 frames per (27,000-step) episode start.
    per_transition = 84 * 84 + 8 + 4 + 4 + 4 + 1
    pixels = by["der+seer", "pixels", "compact"]
    assert per_transition < pixels["bytes_per_transition"] < per_transition + 2
    latent = by["der+seer", "frozen", "latent-compact"]
    assert 576 * 4 + 8 + 13 < latent["bytes_per_transition"] < 576 * 4 + 8 + 13 + 1
    # atari8 keeps the pixel replay's capacity after T_f (the public Atari scripts); the whole budget
    # would hold about 3x as many.
    assert latent["capacity_policy"] == "pixel" and latent["capacity"] == pixels["capacity"]
    assert latent["capacity_budget"] == pytest.approx(
        pixels["capacity"] * pixels["bytes_per_transition"] / latent["bytes_per_transition"], rel=1e-3
    )
    # After T_f an update runs only the heads: the 3 conv passes (one with backward) are gone.
    assert latent["update_flops"] < 0.35 * pixels["update_flops"]


def test_profile_of_the_public_protocol_holds_exactly_the_public_scripts_replays(capsys):
    """seer_public's budgets hold exactly 1,000 and 80,000 pixel transitions, and after T_f the public
    formula's 18,750 and 80,000 latent ones (the reference's examples)."""
    code = main(["profile", "--suite", "seer_public", "--agents", "curl+seer", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    pixels = {
        r["budget_gb"]: r["capacity"] for r in rows if r["phase"] == "pixels" and r["layout"] == "paper"
    }
    frozen = {r["budget_gb"]: (r["capacity"], r["capacity_policy"]) for r in rows if r["phase"] == "frozen"}
    assert pixels == {0.180013: 1_000, 14.40104: 80_000}
    assert frozen == {0.180013: (18_750, "public"), 14.40104: (80_000, "public")}


def test_the_public_protocol_suite_resolves_to_the_public_scripts_runs():
    from seer_bench.agents import AGENTS
    from seer_bench.envs import KNOWN_ENVS
    from seer_bench.suites import Overrides, load_suite, resolve

    specs = resolve(load_suite("seer_public"), Overrides(), AGENTS, KNOWN_ENVS)
    assert {s.seed for s in specs} == {123, 231, 312} and {s.agent for s in specs} == {"curl", "curl+seer"}
    assert len(specs) == 2 * 2 * 3  # agents x budgets x seeds
    seer = next(s for s in specs if s.agent == "curl+seer")
    assert (seer.env, seer.action_repeat, seer.agent_steps, seer.eval_every // 8, seer.eval_episodes) == (
        "cartpole-swingup",
        8,
        80_000,
        2_500,
        10,
    )
    assert (seer.seer.freeze_at, seer.seer.num_copies, seer.seer.capacity) == (10_000, 4, "public")
    assert "budget_14.40104/seed_123" in seer.run_id or "budget_0.180013/seed_123" in seer.run_id


def test_profile_prints_every_drqv2_split_and_says_where_the_capacity_falls(capsys):
    args = ["profile", "--suite", "dmc6_drqv2", "--envs", "cartpole-swingup", "--agents", "drqv2+seer"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    frozen = {r["split"]: r for r in rows if r["phase"] == "frozen"}
    pixels = next(r for r in rows if r["phase"] == "pixels" and r["layout"] == "compact")
    assert set(frozen) == {"conv1", "conv2", "conv3", "conv4", "fc"}
    assert [s for s, r in frozen.items() if r["configured"]] == ["fc"]
    assert all(r["from_layout"] == "compact" for r in frozen.values())  # the suite's layout
    # bytes: numpy itemsizes x shapes, obs and next_obs latents x 4 copies + action, reward, not_done, last
    scalars = np.dtype(np.float32).itemsize * 3 + np.dtype(np.uint8).itemsize
    f32 = np.dtype(np.float32).itemsize
    assert frozen["fc"]["bytes_per_transition"] == 2 * 2 * 4 * 50 * f32 + scalars == 3_213
    assert frozen["conv4"]["bytes_per_transition"] == 2 * 4 * 32 * 35 * 35 * f32 + scalars
    assert frozen["fc"]["capacity"] == 600_000_000 // 3_213
    # a compact pixel transition: one 3x84x84 uint8 frame, its frame index (int64), the scalars, and the
    # frame ring's k extra frames per 500-step episode (cartpole at action repeat 2)
    frame = 3 * 84 * 84 * np.dtype(np.uint8).itemsize
    assert frame + 8 + scalars < pixels["bytes_per_transition"] < frame + 8 + scalars + 3 * frame / 400
    assert frozen["fc"]["capacity"] > 6 * pixels["capacity"] > 6 * 50 * frozen["conv4"]["capacity"]
    # FLOPs: the deeper the split, the cheaper the update; fc skips every conv
    flops = [frozen[s]["update_flops"] for s in ("conv1", "conv2", "conv3", "conv4", "fc")]
    assert flops == sorted(flops, reverse=True) and flops[-1] < 0.1 * pixels["update_flops"]

    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    fc = next(line for line in lines if "split fc:" in line)
    conv4 = next(line for line in lines if "split conv4:" in line)
    assert "holds 6.6" in fc and "FALLS" not in fc
    assert "the capacity FALLS, a latent transition (1,254,413 bytes) is larger than a pixel one" in conv4
