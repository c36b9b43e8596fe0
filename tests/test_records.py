"""Damaged records: a torn last line (a crash mid-write) is tolerated, anything else is named by file
and line, never silently used."""

import json

import pytest
from conftest import write_run

from seer_bench.agents import AGENTS
from seer_bench.cli import main
from seer_bench.envs import KNOWN_ENVS
from seer_bench.errors import DamagedRecord
from seer_bench.records import append_event, read_events, run_dir, status, write_config
from seer_bench.suites import Overrides, load_suite, resolve

RUN = "curl/cartpole-swingup/budget_0.6/seed_0"


@pytest.fixture
def finished(tmp_path):
    write_run(tmp_path, "cartpole-swingup", "curl", 0, 100.0)
    return run_dir(tmp_path, RUN)


def test_a_torn_last_event_line_is_left_out_and_cut_by_the_next_append(finished):
    events = finished / "events.jsonl"
    before = events.read_bytes()
    torn = json.dumps({"event": "failed", "time": 1.0, "reason": "cut"})[:25]
    events.write_bytes(before + torn.encode())  # what a kill during `write` leaves
    assert [e["event"] for e in read_events(finished)] == ["started", "finished"]
    append_event(finished, "resumed", step=3)
    assert events.read_bytes().startswith(before) and torn.encode() not in events.read_bytes()
    assert [e["event"] for e in read_events(finished)] == ["started", "finished", "resumed"]


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"no": "event"}', "\x00\x00\x00"])
def test_a_damaged_event_line_inside_the_log_is_named_by_file_and_line(finished, garbage):
    events = finished / "events.jsonl"
    lines = events.read_text().splitlines()
    events.write_text("\n".join([lines[0], garbage, *lines[1:]]) + "\n")
    with pytest.raises(DamagedRecord, match=rf"{events}:2: not an event record"):
        read_events(finished)


def test_a_sweep_into_an_out_with_a_damaged_event_log_is_one_line_naming_it(tmp_path, capsys):
    (spec,) = resolve(
        load_suite("dmc6"),
        Overrides(scale="smoke", envs=["cartpole-swingup"], agents=["curl"], seeds=1, budgets_gb=[0.6]),
        AGENTS,
        KNOWN_ENVS,
    )
    write_config(run_dir(tmp_path, spec.run_id), {"spec": spec.to_dict()})  # the sweep's own run
    events = run_dir(tmp_path, spec.run_id) / "events.jsonl"
    events.write_text('garbage\n{"event": "started", "time": 1.0}\n')
    argv = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl"]
    code = main([*argv, "--seeds", "1", "--budget-gb", "0.6", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{events}:1: not an event record" in err, err


def test_a_torn_line_does_not_change_a_runs_status(finished):
    (finished / "events.jsonl").open("a").write('{"event": "fail')
    assert status(read_events(finished)) == "finished"
