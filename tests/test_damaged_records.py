"""Damaged metrics.csv and checkpoint.pt, on a real tiny run killed after its checkpoint: a row a crash cut
is evaluated again on resume; a damaged record is named and its run reported as untrusted, the others
reported; a NaN return or an empty metrics.csv is left out of aggregates; a corrupt checkpoint is named, set
aside (kept) and the run restarts from zero."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import checkpoint_step, start_process, tiny_spec, wait_while_running, write_run

from seer_bench import checkpoint
from seer_bench.cli import main
from seer_bench.errors import CorruptCheckpoint
from seer_bench.records import METRICS_COLUMNS, last_event, read_events, run_dir
from seer_bench.reports import aggregates, run_table, summary
from seer_bench.runner import CHECKPOINT_KEYS, RunOptions, run

# 10 agent steps at action repeat 50 (20 per evaluation episode): evaluations at 0, 5 and 10, a checkpoint
# at 5, updates from 2; small networks
SPEC = tiny_spec(
    "curl",
    action_repeat=50,
    steps=500,
    eval_every=250,
    agent_overrides={"batch_size": 8, "init_steps": 2, "hidden_dim": 32, "num_filters": 8, "num_layers": 2},
)
OPTIONS = RunOptions(checkpoint_every=250)
RUN = "curl/cartpole-swingup/budget_0.01/seed_3"


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """A real run (a sweep's worker process) killed with SIGKILL once its checkpoint at step 5 is saved."""
    out = tmp_path_factory.mktemp("crashed")
    path = run_dir(out, SPEC.run_id)
    options, spec = json.dumps(dataclasses.asdict(OPTIONS)), json.dumps(SPEC.to_dict())
    proc = start_process("-m", "seer_bench.worker", str(out), options, "1", spec)
    wait_while_running(proc, lambda: checkpoint_step(path) == 5)
    proc.kill()
    proc.wait()
    return out


def copy(out: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a sweep's records to damage, and its real run's directory."""
    mine = Path(shutil.copytree(out, tmp_path / "out"))
    return mine, run_dir(mine, RUN)


@pytest.fixture(scope="module")
def resumed(crashed, tmp_path_factory):
    """The crashed run with its row at the checkpoint step cut mid-write (what a power loss leaves: the
    checkpoint is fsynced, metrics.csv is not), resumed to the end. Returns the records and that row whole."""
    out, path = copy(crashed, tmp_path_factory.mktemp("resumed"))
    lines = (path / "metrics.csv").read_text().splitlines(keepends=True)
    (at,) = [i for i, line in enumerate(lines) if line.startswith("5,")]
    whole = dict(zip(lines[0].strip().split(","), lines[at].strip().split(",")))
    cut = lines[at][: lines[at].index(".")]  # step, env steps and the return's integer part: "5,250,52"
    (path / "metrics.csv").write_text("".join(lines[:at]) + cut)
    run(SPEC, out, OPTIONS)
    return out, whole


def test_a_metrics_row_a_crash_cut_is_evaluated_again_on_resume(resumed):
    out, whole = resumed
    path = run_dir(out, RUN)
    metrics = pd.read_csv(path / "metrics.csv")
    assert list(metrics["step"]) == [0, 5, 10]  # every evaluation once
    row = metrics.set_index("step").loc[5]
    # evaluated from the checkpoint's state, not the cut row's integer return and empty columns
    for column in ("env_steps", "updates", "replay_size", "replay_bytes", "cum_flops", "cum_flops_update"):
        assert row[column] == int(whole[column]), column
    # not measured here: no Atari, no GPU; no update (price, time) before the first evaluation
    measured = metrics.drop(
        columns=["hns", "gpu_bytes", "gpu_alloc_bytes", "gpu_reserved_bytes", "update_flops", "update_s_mean"]
    )
    assert measured.notna().all().all() and row["eval_return"] != int(row["eval_return"])
    events = read_events(path)
    assert [e["event"] for e in events] == ["started", "resumed", "torn_row_dropped", "finished"]
    torn = last_event(events, "torn_row_dropped")
    assert (torn["file"], torn["line"]) == (str(path / "metrics.csv"), 3)
    assert last_event(events, "finished")["final_return"] == metrics["eval_return"].iloc[-1]


def damage_row(path: Path, step: int = 5) -> str:
    """Overwrite the metrics row of `step` with garbage; returns how a report names the damage."""
    lines = (path / "metrics.csv").read_text().splitlines(keepends=True)
    (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{step},")]
    lines[at] = "\x00\x00\x00 garbage\n"
    (path / "metrics.csv").write_text("".join(lines))
    header = len(METRICS_COLUMNS)
    return f"{path / 'metrics.csv'}:{at + 1}: 1 fields, the header has {header}; fix or delete that line"


def cut_header(path: Path) -> str:
    """Cut the header mid-name, the rows left whole; returns how a report names the damage."""
    text = (path / "metrics.csv").read_text()
    (path / "metrics.csv").write_text(text[:40] + text[text.index("\n") :])
    cut = text[:40].split(",")[-1]  # "eval_return_s"
    wrong = f"damaged header (unknown column(s) {cut!r}); the rows cannot be read by column"
    return f"{path / 'metrics.csv'}:1: {wrong}"


@pytest.mark.parametrize("damage", [cut_header, damage_row], ids=["cut header", "garbage row"])
def test_report_names_a_run_whose_metrics_are_damaged_and_reports_the_others(
    resumed, tmp_path, capsys, damage
):
    out, path = copy(resumed[0], tmp_path)
    for seed, final in enumerate((400.0, 600.0)):
        write_run(out, "walker-walk", "curl", seed, final, budget=0.01)
    named = damage(path)
    assert main(["report", "--out", str(out)]) == 0
    assert "the report failed" not in capsys.readouterr().err
    table = pd.read_csv(out / "summary.csv").set_index("env")
    cartpole, walker = table.loc["cartpole-swingup"], table.loc["walker-walk"]
    assert cartpole["status"] == "0/1 finished, 1 untrusted (partial: 0 of 500 env steps)"
    assert cartpole["untrusted"] == 1
    assert np.isnan(cartpole["return_mean"]) and np.isnan(cartpole["peak_rss_bytes"])  # nothing of it is used
    assert (walker["return_mean"], walker["untrusted"]) == (500.0, 0)
    md = (out / "summary.md").read_text()
    assert md.endswith(f"\nUntrusted runs, left out of every table and figure:\n\n- {RUN}: {named}\n")
    assert (out / "figures" / "return_vs_env_steps.png").stat().st_size > 10_000


def set_last_return(path: Path, text: str) -> None:
    """Write `text` as the last metrics row's eval_return (third field)."""
    *rows, last = (path / "metrics.csv").read_text().splitlines(keepends=True)
    fields = last.split(",")
    (path / "metrics.csv").write_text("".join(rows) + ",".join([*fields[:2], text, *fields[3:]]))


@pytest.mark.parametrize("damage", ["nan return", "empty file"])
def test_a_finished_run_without_a_finite_score_is_left_out_of_aggregates(resumed, tmp_path, damage):
    out, path = copy(resumed[0], tmp_path)
    for seed, final in enumerate((400.0, 600.0)):
        write_run(out, "cartpole-swingup", "curl", seed, final, budget=0.01)
    if damage == "nan return":
        set_last_return(path, "nan")
    else:
        (path / "metrics.csv").write_text("")
    runs, curves = run_table(out)
    assert list(runs["status"]) == ["finished"] * 3  # a finite score is not a record's damage
    agg = aggregates(runs, reps=50).set_index("metric")
    assert agg.loc["mean", "value"] == pytest.approx(0.5) and agg.loc["mean", "runs_left_out"] == 1
    assert summary(runs, curves).iloc[0]["return_mean"] == 500.0
    assert main(["report", "--out", str(out)]) == 0


def test_check_is_undecided_where_the_records_it_needs_are_untrusted(resumed, tmp_path, capsys):
    out, path = copy(resumed[0], tmp_path)
    write_run(out, "cartpole-swingup", "curl", 0, 100.0, budget=0.01)  # beside the real seed 3
    for seed in (0, 3):
        write_run(out, "cartpole-swingup", "curl+seer", seed, 100.0, budget=0.01)
    claims = tmp_path / "gate.claims.toml"
    claims.write_text(  # the synthetic records' 200 env steps are the evidence this gate asks for
        'min_env_steps = 200\n[[claims]]\nkind = "capacity_ratio"\nagent = "curl+seer"\nbaseline = "curl"\n'
        'baseline_layout = "paper"\nmin = 2.0\n'
    )
    argv = ["check", "--out", str(out), "--claims", str(claims)]
    assert main(argv) == 0, capsys.readouterr().out  # 3000 transitions against 1000 and the real run's 55
    damage_row(path)
    assert main(argv) == 2
    assert "undecided incomplete records: 1 untrusted run(s) of curl+seer / curl" in capsys.readouterr().out


def test_a_corrupt_checkpoint_is_named_set_aside_and_the_run_restarts_from_zero(crashed, tmp_path, capsys):
    out, path = copy(crashed, tmp_path)
    garbage = b"\x00not a checkpoint" * 64
    (path / "checkpoint.pt").write_bytes(garbage)
    run(SPEC, out, OPTIONS)
    err = capsys.readouterr().err
    assert f"{path / 'checkpoint.pt'}: not a readable checkpoint, damaged or cut" in err, err
    (kept,) = path.glob("checkpoint.pt.corrupt-*")
    assert kept.read_bytes() == garbage and f"set aside as {kept.name}, restarting from zero" in err
    events = read_events(path)
    assert [e["event"] for e in events] == ["started", "checkpoint_discarded", "started", "finished"]
    discarded = last_event(events, "checkpoint_discarded")
    assert (discarded["file"], discarded["set_aside"]) == (str(path / "checkpoint.pt"), kept.name)
    assert list(pd.read_csv(path / "metrics.csv")["step"]) == [0, 5, 10]  # from zero: no row of before kept
    train = pd.read_csv(path / "train.csv")
    assert len(train) and not train.duplicated(["step", "metric"]).any()
    assert not (
        path / "checkpoint.pt"
    ).exists()  # finished: its own checkpoint is deleted, the corrupt one kept


def test_a_checkpoint_without_a_runs_state_is_corrupt(tmp_path):
    checkpoint.save(tmp_path, {"step": 3})
    with pytest.raises(
        CorruptCheckpoint, match=f"{tmp_path / 'checkpoint.pt'}: not a run checkpoint, it lacks frozen"
    ):
        checkpoint.load(tmp_path, CHECKPOINT_KEYS)
