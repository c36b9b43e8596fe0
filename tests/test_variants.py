"""--set and a suite's [sweep]: any agent or SEER setting as a grid of labelled variants, checked before
any run (the runs themselves: tests/test_reports.py's variant sweep)."""

import dataclasses

import pandas as pd
import pytest

from seer_bench.agents import AGENTS
from seer_bench.agents.curl_sac import CurlConfig
from seer_bench.cli import main
from seer_bench.envs import KNOWN_ENVS
from seer_bench.errors import ConfigError
from seer_bench.names import base_label, label
from seer_bench.reports.figures import swept_settings
from seer_bench.suites import Overrides, load_suite, resolve
from seer_bench.variants import parse_set

SMOKE = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup"]


def specs_of(suite="dmc6", **sets):
    return resolve(
        load_suite(suite),
        Overrides(scale="smoke", envs=["cartpole-swingup"], sets=sets),
        AGENTS,
        KNOWN_ENVS,
    )


def test_a_grid_of_seer_and_agent_settings_labels_each_combination_and_spares_the_baseline_seer_keys():
    specs = specs_of(**{"seer.freeze_at": [30, 40], "agent.batch_size": [8, 32]})
    runs = {s.run_id.split("/")[0]: s for s in specs}
    assert sorted(runs) == [
        "curl+seer[batch_size=32,freeze_at=30]",
        "curl+seer[batch_size=32,freeze_at=40]",
        "curl+seer[batch_size=8,freeze_at=30]",
        "curl+seer[batch_size=8,freeze_at=40]",
        "curl[batch_size=32]",  # SEER settings do not apply to curl: one run per batch size
        "curl[batch_size=8]",
    ]
    seer = runs["curl+seer[batch_size=8,freeze_at=40]"]
    assert seer.seer.freeze_at == 40 and seer.agent_overrides["batch_size"] == 8
    assert seer.agent_overrides["init_steps"] == 20  # the scale's other settings stay
    assert base_label(seer.agent, seer.variant) == "curl[batch_size=8]"
    assert base_label("curl+seer", {"seer.freeze_at": 40}) == "curl"


def test_without_sets_run_ids_are_unlabelled_as_before():
    assert {s.run_id for s in specs_of()} == {
        "curl/cartpole-swingup/budget_0.02/seed_0",
        "curl+seer/cartpole-swingup/budget_0.02/seed_0",
    }


def test_labels_format_floats_and_booleans_and_namespace_a_shared_field():
    assert label("curl", {"agent.critic_lr": 3e-4}) == "curl[critic_lr=0.0003]"
    assert label("x", {"agent.flag": True}) == "x[flag=true]"
    assert label("x", {"agent.capacity": 1, "seer.capacity": "pixel"}) == (
        "x[agent.capacity=1,seer.capacity=pixel]"
    )


def test_parsed_values_take_the_types_toml_gives_them():
    assert parse_set("agent.critic_lr=1e-3, 3e-4") == ("agent.critic_lr", [1e-3, 3e-4])
    assert parse_set("seer.split=conv2,fc") == ("seer.split", ["conv2", "fc"])
    assert parse_set("agent.x=true") == ("agent.x", [True])


def test_a_suite_sweep_runs_as_set_does_and_a_set_of_the_same_key_replaces_it(tmp_path):
    text = (load_suite("dmc6").path.read_text()) + '\n[sweep]\n"seer.freeze_at" = [25, 35]\n'
    (tmp_path / "s.toml").write_text(text)
    suite = load_suite(str(tmp_path / "s.toml"))
    assert suite.sweep == {"seer.freeze_at": [25, 35]}
    ov = Overrides(scale="smoke", envs=["cartpole-swingup"], agents=["curl+seer"])
    assert [s.seer.freeze_at for s in resolve(suite, ov, AGENTS, KNOWN_ENVS)] == [25, 35]
    ov.sets = {"seer.freeze_at": [45]}
    assert [s.label for s in resolve(suite, ov, AGENTS, KNOWN_ENVS)] == ["curl+seer[freeze_at=45]"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--set", "freeze_at=3"], "the setting must be agent.<setting> or seer.<setting>, got 'freeze_at'"),
        (["--set", "seer.freeze_at"], "expected namespace.setting=value[,value...]"),
        (["--set", "seer.freeze=3"], "--set seer.freeze=3: not a SEER setting; known: freeze_at"),
        (["--set", "agent.batchsize=3"], "--set agent.batchsize=3: agent curl: unknown setting 'batchsize'"),
        (["--set", "agent.batch_size=3.5"], "setting 'batch_size' expects int, got 3.5"),
        (["--set", "seer.latent_dtype=float8"], "latent_dtype must be one of float32, float16, got 'float8'"),
        (["--set", "seer.freeze_at=0"], "--set seer.freeze_at=0: freeze_at must be a positive number"),
        (["--set", "seer.freeze_at=10,1e1"], "--set seer.freeze_at=10.0: expects int, got 10.0"),
        (["--set", "agent.critic_lr=1e-3,0.001"], "--set agent.critic_lr: a value is listed twice"),
        (["--set", "seer.freeze_at=3", "--set", "seer.freeze_at=4"], "--set seer.freeze_at is given twice"),
        (
            ["--freeze-at", "3", "--set", "seer.freeze_at=4"],
            "--freeze-at and --set seer.freeze_at both set it",
        ),
        (["--agents", "curl", "--set", "seer.num_copies=2"], "no agent of this sweep uses SEER (curl)"),
    ],
)
def test_a_bad_set_is_one_line_and_exit_2_before_any_run(capsys, tmp_path, argv, message):
    assert main([*SMOKE, *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_every_curl_setting_can_be_set():
    """The keys --set accepts are the config dataclass's fields, not a hand-kept list."""
    defaults = CurlConfig()
    for f in dataclasses.fields(CurlConfig):
        value = getattr(defaults, f.name)
        spec = specs_of(**{f"agent.{f.name}": [value]})[0]
        assert spec.agent_overrides[f.name] == value and spec.label.startswith(f"curl[{f.name}=")


def test_a_sweep_of_the_same_value_spelled_twice_is_refused():
    with pytest.raises(ConfigError, match="listed twice"):
        parse_set("seer.split=fc,fc")


def test_any_task_of_the_suites_family_runs_by_name_with_the_documented_action_repeat():
    """Suite membership only says what runs with no --envs: a DMC suite runs any dm_control task, an
    Atari suite any ALE game; PlaNet's repeat for the six, the suite's frame skip for Atari, else 2."""

    def repeats(suite, envs, **flags):
        ov = Overrides(scale="smoke", envs=envs, seeds=1, **flags)
        return {s.env: s.action_repeat for s in resolve(load_suite(suite), ov, AGENTS, KNOWN_ENVS)}

    assert repeats("dmc6", ["hopper-stand", "cheetah-run", "quadruped-walk"]) == {
        "hopper-stand": 2,
        "cheetah-run": 4,
        "quadruped-walk": 2,
    }
    assert repeats("dmc6", ["hopper-stand"], action_repeat=4) == {"hopper-stand": 4}
    assert repeats("atari8", ["pong", "spaceinvaders"]) == {"pong": 4, "spaceinvaders": 4}
    assert {s.env for s in specs_of()} == {"cartpole-swingup"}  # --envs given: only those


def test_a_task_outside_the_suite_takes_the_t_f_its_tasks_share():
    ov = Overrides(envs=["hopper-stand"], agents=["curl+seer"], seeds=1)
    (spec,) = resolve(load_suite("dmc6"), ov, AGENTS, KNOWN_ENVS)
    assert spec.seer.freeze_at == 10_000 == load_suite("dmc6").seer["freeze_at"]["walker-walk"]


def test_a_t_f_ablation_and_its_baseline_share_one_out_and_report_by_variant(tmp_path, capsys):
    """A real sweep of two T_f variants, then the baseline into the same --out: one results tree, rows per
    variant, FLOPs compared with curl, and the ablation figure of return and FLOPs against T_f."""
    short = [*SMOKE, "--steps", "240", "--eval-every", "240", "--out", str(tmp_path)]
    assert main([*short, "--agents", "curl+seer", "--set", "seer.freeze_at=22,26"]) == 0
    assert main([*short, "--agents", "curl"]) == 0  # the baseline joins the same tree
    capsys.readouterr()
    runs = sorted(p.parent.parent.parent.name for p in tmp_path.glob("runs/*/*/*/seed_0"))
    assert runs == ["curl", "curl+seer[freeze_at=22]", "curl+seer[freeze_at=26]"]
    assert main(["report", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "summary.csv").set_index("agent")
    assert list(table.loc["curl+seer[freeze_at=26]", ["base_agent", "baseline"]]) == ["curl+seer", "curl"]
    assert table.loc["curl+seer[freeze_at=22]", "variant"] == '{"seer.freeze_at": 22}'
    # froze 4 agent steps earlier: fewer FLOPs than the later freeze, both fewer than curl's
    ratios = table["flops_ratio_to_baseline"]
    assert ratios["curl+seer[freeze_at=22]"] < ratios["curl+seer[freeze_at=26]"] < 1
    swept = swept_settings(table.reset_index())
    assert list(swept) == ["seer.freeze_at"]  # what the ablation figure draws: T_f against return and FLOPs
    assert sorted(swept["seer.freeze_at"]["value"]) == [22, 26]
    assert set(swept["seer.freeze_at"]["line"]) == {"curl+seer"}
    figure = tmp_path / "figures" / "ablation_freeze_at.png"
    assert figure.exists() and figure.with_suffix(".pdf").exists()
