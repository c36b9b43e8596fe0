"""`bench.py check`: claims that pass, fail and cannot be decided on constructed records, with exit codes."""

import numpy as np
import pytest
from conftest import write_run
from scipy import stats

from seer_bench.cli import main
from seer_bench.records import write_plan
from seer_bench.reports import run_table
from seer_bench.reports.claims import evaluate, load_claims

FINALS = {"curl": [800.0, 700.0, 750.0], "curl+seer": [790.0, 710.0, 640.0]}


@pytest.fixture
def records(tmp_path):
    for agent, finals in FINALS.items():
        for seed, final in enumerate(finals):
            write_run(tmp_path / "out", "cartpole-swingup", agent, seed, final)
    write_run(tmp_path / "out", "walker-walk", "curl+seer", 0, 500.0)  # no curl run on walker-walk
    return tmp_path


# the synthetic records' length (write_run): lower evidence than the default (the suite's paper length),
# stated as claims files state it
EVIDENCE = "min_env_steps = 200\n"
PAPER = '\nbaseline_layout = "paper"'  # what a capacity claim compares with


def claims_file(tmp_path, text, evidence=EVIDENCE, name="test"):
    path = tmp_path / f"{name}.claims.toml"
    path.write_text(evidence + text)
    return str(path)


CLAIM = """
[[claims]]
kind = "{kind}"
agent = "curl+seer"
baseline = "curl"
envs = ["cartpole-swingup"]
{extra}
"""


def check(capsys, records, text, evidence=EVIDENCE, name="test"):
    path = claims_file(records, text, evidence, name)
    code = main(["check", "--out", str(records / "out"), "--claims", path])
    return code, capsys.readouterr()


def test_claims_that_hold_exit_0_with_measured_values(capsys, records):
    text = (
        CLAIM.format(kind="flops_ratio", extra="max = 0.6")
        + CLAIM.format(kind="capacity_ratio", extra="min = 2.5" + PAPER)
        + CLAIM.format(kind="return_gap", extra="min = -100.0")
        + CLAIM.format(kind="return_gap", extra='rule = "ci_overlap"')
    )
    code, out = check(capsys, records, text)
    assert code == 0, out.out
    lines = out.out.splitlines()
    assert "0.400 <=" in lines[1] and "pass" in lines[1]  # 4 / 10 FLOPs per env step, every seed
    assert "3.000 >=" in lines[2]  # capacity 3000 vs 1000
    assert f"{np.mean(FINALS['curl+seer']) - np.mean(FINALS['curl']):.3f} >=" in lines[3]
    a, b = np.array(FINALS["curl+seer"]), np.array(FINALS["curl"])
    overlap = (
        stats.t.interval(0.95, 2, loc=a.mean(), scale=stats.sem(a))[1]
        - stats.t.interval(0.95, 2, loc=b.mean(), scale=stats.sem(b))[0]
    )
    assert (
        f"{overlap:.3f} >=" in lines[4] and lines[-1] == "4 passed, 0 failed, 0 undecided, 0 not applicable"
    )


def test_a_claim_that_fails_exits_1_even_beside_an_undecided_one(capsys, records):
    text = CLAIM.format(kind="flops_ratio", extra="max = 0.3") + CLAIM.format(
        kind="return_gap", extra="min = 0.0\nmin_seeds = 5"
    )
    code, out = check(capsys, records, text)
    assert code == 1
    assert "fail" in out.out.splitlines()[1] and "0.400" in out.out
    assert "fewer than 5 finished seed(s) of curl+seer, curl" in out.out


@pytest.mark.parametrize(
    "text,reason",
    [
        (
            CLAIM.format(kind="flops_ratio", extra="max = 0.6").replace(
                'envs = ["cartpole-swingup"]', 'envs = ["walker-walk"]'
            ),
            "no finished runs of curl on walker-walk at 0.6 GB",
        ),
        (
            CLAIM.format(kind="capacity_ratio", extra="min = 2.0" + PAPER)
            .replace('"curl+seer"', '"der+seer"')
            .replace('"curl"', '"der"')
            .replace('envs = ["cartpole-swingup"]\n', ""),
            "no runs of der+seer or der in the records",
        ),
        (
            CLAIM.format(kind="return_gap", extra='rule = "ci_overlap"\nmin_seeds = 4'),
            "fewer than 4 finished seed(s)",
        ),
    ],
)
def test_records_that_cannot_decide_exit_2_with_the_reason(capsys, records, text, reason):
    code, out = check(capsys, records, text)
    assert code == 2 and "undecided" in out.out and reason in out.out, out.out


def test_every_env_of_the_records_is_checked_when_the_claim_names_none(records):
    claims = load_claims(
        claims_file(
            records,
            CLAIM.format(kind="capacity_ratio", extra="min = 2.0" + PAPER).replace(
                'envs = ["cartpole-swingup"]\n', ""
            ),
        )
    )
    verdicts = evaluate(claims, *run_table(records / "out"))
    assert [(v.env, v.result) for v in verdicts] == [
        ("cartpole-swingup", "pass"),
        ("walker-walk", "undecided"),
    ]


@pytest.mark.parametrize(
    "extra,message",
    [
        ("max = 0.6\nkindd = 1", "claims[0]: unknown key(s) kindd"),
        ("min = 0.6", "claims[0].min: flops_ratio takes `max`, not `min`"),
        ('max = "low"', "claims[0].max: expected a finite number, got 'low'"),
        ("", "claims[0].max: expected a finite number, got None"),
        ("max = nan", "claims[0].max: expected a finite number, got nan"),  # would always fail
        ("max = inf", "claims[0].max: expected a finite number, got inf"),  # would always hold
        ('max = 0.6\nrule = "ci_overlap"', "claims[0].rule: 'ci_overlap' is not a rule of flops_ratio"),
        ("max = 0.6\nmin_seeds = 0", "claims[0].min_seeds: expected a positive integer, got 0"),
        ("max = 0.6\nmin_env_steps = -1", "claims[0].min_env_steps: expected a non-negative integer, got -1"),
        (
            "max = 0.6\nmin_scale_fraction = 0",
            "claims[0].min_scale_fraction: expected a positive number, got 0",
        ),
        (
            "max = 0.6\nmin_env_steps = 5\nmin_scale_fraction = 0.5",
            "claims[0]: state min_env_steps or min_scale_fraction, not both",
        ),
        (
            "max = 0.6\nmin_scale_fraction = 0.5",  # test.claims.toml: no suite named test to take it of
            "claims[0].min_scale_fraction: a fraction of suite 'test''s paper scale, which cannot be read",
        ),
        ('max = 0.6\nbaseline_layout = "paper"', "claims[0].baseline_layout: only capacity_ratio claims"),
    ],
)
def test_malformed_claims_name_the_file_and_key(capsys, records, extra, message):
    code, out = check(capsys, records, CLAIM.format(kind="flops_ratio", extra=extra))
    assert code == 3 and "test.claims.toml: " + message in out.err, out.err


@pytest.mark.parametrize("layout", ["", 'baseline_layout = "latent"'])
def test_a_capacity_claim_must_name_a_pixel_baseline_layout(capsys, records, layout):
    code, out = check(capsys, records, CLAIM.format(kind="capacity_ratio", extra="min = 2.0\n" + layout))
    message = "claims[0].baseline_layout: a capacity_ratio claim names the baseline's replay layout, one of "
    assert code == 3 and message + "paper, compact" in out.err, out.err


def test_unknown_kind_and_missing_file_are_clear_errors(capsys, records):
    code, out = check(capsys, records, CLAIM.format(kind="speed", extra="max = 1.0"))
    assert (
        code == 3
        and "claims[0].kind: unknown kind 'speed'; known: flops_ratio, return_gap, capacity_ratio" in out.err
    )
    code, out = check(
        capsys, records, CLAIM.format(kind="return_gap", extra='rule = "ci_overlap"\nmin_seeds = 1')
    )
    assert (
        code == 3
        and "claims[0].min_seeds: ci_overlap needs confidence intervals, so at least 2 seeds" in out.err
    )
    assert main(["check", "--out", str(records / "out"), "--claims", str(records / "none.toml")]) == 3
    assert "claims file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "suite,paper_steps,layout",
    [
        ("dmc6", 500_000, "paper"),
        ("dmc6_drqv2", 1_000_000, "compact"),
        ("atari8", 2_000_000, "compact"),
        ("atari100k", 400_000, "compact"),
        ("seer_public", 640_000, "paper"),  # no `paper` scale: its default, `public`
    ],
)
def test_suite_claims_files_load_and_ask_for_the_paper_length(suite, paper_steps, layout):
    claims = load_claims(f"suites/{suite}.claims.toml")
    assert {c.kind for c in claims} == {"flops_ratio", "return_gap", "capacity_ratio"}
    assert {(c.min_env_steps, c.min_seeds) for c in claims} == {(paper_steps, 3)}
    assert [c.baseline_layout for c in claims if c.kind == "capacity_ratio"] == [layout]


@pytest.mark.parametrize(
    "length,evidence,code,message",
    [
        (200, "", 2, "undecided smoke-scale records: 200 env steps < 500,000"),  # the default: paper length
        (500_000, "", 0, "pass"),
        (200, "min_scale_fraction = 0.0004\n", 0, "pass"),  # of dmc6's 500,000: 200
        (200, "min_scale_fraction = 0.5\n", 2, "smoke-scale records: 200 env steps < 250,000"),
    ],
)
def test_records_shorter_than_the_claims_evidence_are_undecided(
    capsys, tmp_path, length, evidence, code, message
):
    for agent in ("curl", "curl+seer"):
        write_run(tmp_path / "out", "cartpole-swingup", agent, 0, 500.0, steps=(0, length), length=length)
    # a claims file named after dmc6: its fraction is of dmc6's paper scale
    got, out = check(capsys, tmp_path, CLAIM.format(kind="flops_ratio", extra="max = 0.6"), evidence, "dmc6")
    assert got == code and message in " ".join(out.out.splitlines()[1].split()), out.out


def test_a_claims_own_evidence_wins_over_its_files(capsys, records):
    text = CLAIM.format(kind="flops_ratio", extra="max = 0.6") + CLAIM.format(
        kind="flops_ratio", extra="max = 0.6\nmin_seeds = 2\nmin_env_steps = 100"
    )
    code, out = check(capsys, records, text, evidence="min_seeds = 4\nmin_env_steps = 300\n")
    lines = out.out.splitlines()
    assert code == 2 and "smoke-scale records: 200 env steps < 300" in lines[1] and "pass" in lines[2], (
        out.out
    )
    code, out = check(capsys, records, text, evidence="min_seeds = 4\nmin_env_steps = 200\n")
    lines = out.out.splitlines()
    assert code == 2 and "3 seed(s) finished for both curl+seer and curl, need 4" in lines[1], out.out
    assert "pass" in lines[2], out.out


def test_a_files_min_seeds_serves_every_rule_and_is_checked(capsys, records):
    ci = CLAIM.format(kind="return_gap", extra='rule = "ci_overlap"')
    # a file's 1 seed is no error for a ci_overlap claim: it takes the 2 its confidence intervals need
    assert load_claims(claims_file(records, ci, EVIDENCE + "min_seeds = 1\n"))[0].min_seeds == 2
    code, out = check(capsys, records, ci, EVIDENCE + "min_seeds = 0\n")
    assert code == 3 and "test.claims.toml: min_seeds: expected a positive integer, got 0" in out.err, out.err


@pytest.mark.parametrize(
    "ran,shape,result,measured,note",
    [
        ("paper", True, "pass", "3.000", ""),  # like with like: the recorded capacity
        # a compact baseline's capacity in the paper layout, computed: 0.6 GB holds 3,333 pixel transitions
        ("compact", True, "pass", "0.900", "curl ran with the compact replay layout; its paper capacity is "
         "computed from its budget (3,333 transitions)"),
        ("compact", False, "undecided", "n/a", "curl ran with the compact replay layout, this claim compares "
         "with paper, and its records lack the transition shape to compute paper's capacity"),
    ],
)  # fmt: skip
def test_a_capacity_claim_compares_with_the_baseline_layout_it_names(
    capsys, tmp_path, ran, shape, result, measured, note
):
    write_run(tmp_path / "out", "cartpole-swingup", "curl+seer", 0, 500.0)
    write_run(tmp_path / "out", "cartpole-swingup", "curl", 0, 500.0, layout=ran, env_shape=shape)
    code, out = check(capsys, tmp_path, CLAIM.format(kind="capacity_ratio", extra="min = 0.5" + PAPER))
    line = " ".join(out.out.splitlines()[1].split())
    assert f"{measured} >= 0.500 {result} {note}".strip() in line and code == (0 if result == "pass" else 2)


def test_a_failed_or_running_run_makes_the_gate_undecided(capsys, records):
    write_run(records / "out", "cartpole-swingup", "curl+seer", 3, 0.0, steps=(0, 100), status="running")
    write_run(records / "out", "cartpole-swingup", "curl", 3, 0.0, steps=(0,), status="failed")
    code, out = check(capsys, records, CLAIM.format(kind="capacity_ratio", extra="min = 2.0" + PAPER))
    assert code == 2 and "incomplete records: 1 failed, 1 running run(s) of curl+seer / curl" in out.out, (
        out.out
    )


def test_claims_check_only_the_env_and_budget_pairs_the_records_hold(records):
    for agent in FINALS:
        # a budget run on walker-walk only
        write_run(records / "out", "walker-walk", agent, 1, 300.0, budget=0.3)
    claims = load_claims(
        claims_file(
            records,
            CLAIM.format(kind="capacity_ratio", extra="min = 2.0" + PAPER).replace(
                'envs = ["cartpole-swingup"]\n', ""
            ),
        )
    )
    verdicts = evaluate(claims, *run_table(records / "out"))
    assert [(v.env, v.budget_gb, v.result) for v in verdicts] == [
        ("cartpole-swingup", 0.6, "pass"),
        ("walker-walk", 0.3, "pass"),
        ("walker-walk", 0.6, "undecided"),
    ]


def test_a_planned_run_that_never_started_makes_the_gate_undecided(capsys, records):
    spec = {
        "env": "cartpole-swingup",
        "agent": "curl",
        "budget_gb": 0.6,
        "steps": 200,
        "action_repeat": 1,
        "seed": 9,
    }
    write_plan(records / "out", {"curl/cartpole-swingup/budget_0.6/seed_9": spec})
    code, out = check(capsys, records, CLAIM.format(kind="capacity_ratio", extra="min = 2.0" + PAPER))
    assert code == 2 and "incomplete records: 1 not started run(s) of curl+seer / curl" in out.out, out.out


@pytest.mark.parametrize("ran,result", [("budget", "pass"), ("pixel", "n/a")])
def test_a_claim_about_one_seer_capacity_setting_is_not_applied_to_runs_of_another(
    capsys, tmp_path, ran, result
):
    for agent in ("curl", "curl+seer"):
        write_run(
            tmp_path / "out",
            "cartpole-swingup",
            agent,
            0,
            500.0,
            seer_capacity=ran if "+seer" in agent else None,
        )
    text = CLAIM.format(
        kind="capacity_ratio", extra='min = 2.5\nseer_capacity = "budget"' + PAPER
    ) + CLAIM.format(kind="flops_ratio", extra="max = 0.6")
    code, out = check(capsys, tmp_path, text)
    lines = out.out.splitlines()
    assert code == 0 and result in lines[1] and "pass" in lines[2], out.out
    if result == "n/a":
        assert "curl+seer ran with seer capacity = pixel; this claim is about capacity = budget" in lines[1]
        assert lines[-1] == "1 passed, 0 failed, 0 undecided, 1 not applicable"


def test_a_claim_names_a_known_seer_capacity(capsys, records):
    code, out = check(
        capsys, records, CLAIM.format(kind="capacity_ratio", extra='min = 2.5\nseer_capacity = "all"' + PAPER)
    )
    assert (
        code == 3 and "claims[0].seer_capacity: expected one of budget, pixel, public, got 'all'" in out.err
    )
