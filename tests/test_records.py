"""Damaged records: a torn last line (a crash mid-write) is tolerated, anything else is named by file
and line, never silently used."""

import json
import re

import pandas as pd
import pytest
from conftest import write_run

from seer_bench.agents import AGENTS
from seer_bench.cli import main
from seer_bench.envs import KNOWN_ENVS
from seer_bench.errors import DamagedRecord
from seer_bench.records import (
    METRICS_COLUMNS,
    CsvLog,
    append_event,
    load_runs,
    read_events,
    read_metrics,
    run_dir,
    status,
    write_config,
)
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


def test_metrics_read_as_pandas_reads_a_whole_file(finished):
    pd.testing.assert_frame_equal(read_metrics(finished), pd.read_csv(finished / "metrics.csv"))


def test_a_metrics_row_a_crash_cut_is_left_out_unless_the_run_is_finished(finished):
    file, whole = finished / "metrics.csv", read_metrics(finished)
    file.write_text(file.read_text() + "300,300,3")  # no newline: the write was cut (the return was 34.98)
    pd.testing.assert_frame_equal(read_metrics(finished), whole)
    with pytest.raises(
        DamagedRecord, match=rf"{file}:5: the last row is cut, yet the run is recorded finished"
    ):
        read_metrics(finished, finished=True)


def _replace(lines: list[str], at: int, line: str) -> list[str]:
    return [*lines[:at], line, *lines[at + 1 :]]


DAMAGE = {  # what is done to the lines of metrics.csv -> what DamagedRecord says (after "file:")
    "garbage row": (
        lambda lines: _replace(lines, 2, "garbage"),
        f"3: 1 fields, the header has {len(METRICS_COLUMNS)}",
    ),
    "value of another kind": (
        lambda lines: _replace(lines, 1, lines[1].replace("0,0,50.0", "0,zero,50.0", 1)),
        "2: env_steps = 'zero' is not an integer",
    ),
    "required value empty": (  # what CsvLog made of a cut row before it checked rows: the rest padded empty
        lambda lines: _replace(lines, 2, "100,100,3" + "," * (len(METRICS_COLUMNS) - 3)),
        "3: eval_return_std = '' is not a number",
    ),
    "cut header": (
        lambda lines: _replace(lines, 0, lines[0][:40]),
        "1: damaged header (unknown column(s) 'eval_return_s')",
    ),
    "header without step": (
        lambda lines: _replace(lines, 0, lines[0].replace("step,", "", 1)),
        "1: damaged header (no step column)",
    ),
    "header cut at a comma": (
        lambda lines: _replace(lines, 0, "step,env_steps,eval_return"),
        f"2: {len(METRICS_COLUMNS)} fields, the header has 3",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_metrics_file_is_named_by_file_and_line(finished, damage):
    file = finished / "metrics.csv"
    edit, message = DAMAGE[damage]
    file.write_text("\n".join(edit(file.read_text().splitlines())) + "\n")
    with pytest.raises(DamagedRecord, match=re.escape(f"{file}:{message}")):
        read_metrics(finished)


def test_a_last_line_that_is_not_the_start_of_a_row_is_damage_not_a_cut(finished):
    file = finished / "metrics.csv"
    columns = len(file.read_text().splitlines()[0].split(","))
    file.write_text(file.read_text() + "1," * (columns + 1))  # more fields than the header names
    with pytest.raises(DamagedRecord, match=rf"{file}:5: damaged last line"):
        read_metrics(finished)


def test_a_resumed_log_drops_a_row_a_crash_cut_and_says_which(finished):
    file = finished / "metrics.csv"
    whole = file.read_text()
    file.write_text(whole + "300,300,3")
    log = CsvLog(file, METRICS_COLUMNS, keep_through=300)
    log.close()
    assert (log.torn, log.steps) == (5, [0, 100, 200]) and file.read_text() == whole  # rows kept as written
    log = CsvLog(file, METRICS_COLUMNS, keep_through=100)
    log.close()
    assert (log.torn, log.steps) == (None, [0, 100])
    file.write_text(whole.replace("step,", "stop,", 1))
    with pytest.raises(DamagedRecord, match=rf"{file}:1: damaged header"):
        CsvLog(file, METRICS_COLUMNS, keep_through=100)


def test_load_runs_names_each_damaged_record_and_reads_it_as_empty(tmp_path, finished):
    (finished / "events.jsonl").write_text("garbage\n")
    (finished / "metrics.csv").write_text("garbage\n1,2\n")
    ((_, metrics, events, problems),) = load_runs(tmp_path)
    assert metrics.empty and events == [] and len(problems) == 2
    assert problems[0].startswith(f"{finished / 'events.jsonl'}:1: not an event record")
    assert problems[1].startswith(
        f"{finished / 'metrics.csv'}:1: damaged header (unknown column(s) 'garbage')"
    )
