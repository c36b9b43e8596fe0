"""Figures and paper files of a report, checked by their matplotlib artists and bytes on synthetic records
(conftest.write_run) with known values."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import write_run
from matplotlib.collections import PolyCollection
from rliable import metrics

from seer_bench.records import append_event, run_dir
from seer_bench.reports import format_latex, improvement, profiles, run_table, summary, write_report
from seer_bench.reports.figures import COLORS, figures
from seer_bench.reports.latex import escape
from seer_bench.reports.tables import aggregates

STEPS = (0, 100, 1000, 3000)  # FLOPs span decades: return vs FLOPs is drawn on a log axis
FREEZE = 500  # between the evaluations at 100 and 1000


def _seer_freezes(out, env, seed, budget=0.6):
    """A curl+seer run that froze at FREEZE env steps: capacity 3000 -> 9000 from then, and its replay
    held 5 MB of pixels until the freeze and 1 MB of latents at the next evaluation."""
    path = run_dir(out, f"curl+seer/{env}/budget_{budget:g}/seed_{seed}")
    append_event(path, "frozen", step=FREEZE, cum_flops=4 * FREEZE * (1 + seed))
    rows = pd.read_csv(path / "metrics.csv")
    after = rows["env_steps"] > FREEZE
    rows.loc[after, "replay_capacity"] = 9000
    rows.loc[rows["env_steps"] == 1000, ["replay_peak_bytes", "replay_bytes"]] = [5e6, 1e6]
    rows.to_csv(path / "metrics.csv", index=False)


@pytest.fixture(autouse=True)
def close_figures():
    """`figures` hands back open figures (write_figures closes what it saves): close them after each test."""
    yield
    plt.close("all")


@pytest.fixture
def frozen_sweep(tmp_path):
    for seed, agent in itertools.product(range(2), ("curl", "curl+seer")):
        write_run(tmp_path, "cartpole-swingup", agent, seed, 500.0 + seed, steps=STEPS)
        if agent == "curl+seer":
            _seer_freezes(tmp_path, "cartpole-swingup", seed)
    return tmp_path


def _draw(out, reps=50):
    runs, curves = run_table(out)
    assert not runs["damage"].any()
    table, agg = summary(runs, curves), aggregates(runs, reps=reps)
    return figures(runs, curves, table, agg, improvement(runs, reps=reps), profiles(runs, reps=reps))


def _line(fig, agent):
    """The mean curve of `agent` in the first panel."""
    ax = fig.axes[0]
    return next(ln for ln in ax.get_lines() if ln.get_color() == COLORS[agent] and ln.get_linestyle() == "-")


def test_t_f_in_the_legend_and_capacity_and_replay_bytes_step_at_the_freeze(frozen_sweep):
    drawn = _draw(frozen_sweep)
    legend = [t.get_text() for t in drawn["replay_capacity"].legends[0].get_texts()]
    assert legend == ["curl (n=2)", "curl+seer (n=2)", f"T_f of curl+seer ({FREEZE} env steps)"]
    capacity = _line(drawn["replay_capacity"], "curl+seer")
    assert capacity.get_drawstyle() == "steps-pre"
    # drawn as steps ending at each x: 3000 up to T_f (not up to the evaluation at 100), 9000 after it
    assert list(capacity.get_xdata()) == [0, 100, FREEZE, 1000, 3000]
    assert list(capacity.get_ydata()) == [3000, 3000, 3000, 9000, 9000]
    replay = _line(drawn["replay_memory"], "curl+seer")
    assert list(replay.get_xdata()) == [0, 100, FREEZE, 1000, 3000]
    # pixels held until T_f (the peak the next row recorded), then the latents held at that row
    assert list(replay.get_ydata()) == pytest.approx([1, 2, 5, 1, 4])  # MB; seeds differ by bytes only
    assert drawn["replay_memory"].axes[0].get_ylim()[0] == 0
    dotted = [ln for ln in drawn["replay_capacity"].axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert [ln.get_xdata()[0] for ln in dotted] == [FREEZE]


def test_the_shared_zero_flops_start_stays_on_the_log_axis(frozen_sweep):
    fig = _draw(frozen_sweep)["return_vs_flops"]
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0
    for agent in ("curl", "curl+seer"):  # both start at 0 FLOPs with the same untrained return
        line = _line(fig, agent)
        assert line.get_xdata()[0] == 0 and line.get_ydata()[0] == pytest.approx(
            250.25
        )  # half the final return, both seeds
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[-1].startswith("T_f of curl+seer (") and legend[-1].endswith(" TFLOP)")


def test_resident_memory_from_zero_with_the_replay_share_shaded(frozen_sweep):
    fig = _draw(frozen_sweep)["resident_memory"]
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    shares = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_hatch() == "////"]
    assert len(shares) == 2  # one per agent, under its RSS
    top = max(v[:, 1].max() for c in shares for v in (p.vertices for p in c.get_paths()))
    assert top == pytest.approx(5.0)  # MB: curl+seer's pixels before T_f, far under its 600 MB RSS
    assert "replay's share of it" in [t.get_text() for t in fig.legends[0].get_texts()]


def _overlaps(boxes):
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


def test_aggregate_tick_labels_never_overlap(tmp_path):
    # 3 budgets x 2 agents in both domains: 6 rows and 4 panels (IQM and mean of two scores)
    for budget, agent, seed in itertools.product((0.3, 0.6, 1.2), ("curl", "curl+seer"), range(2)):
        write_run(tmp_path, "walker-walk", agent, seed, 300.0 + 100 * seed, budget=budget)
        write_run(tmp_path, "alien", agent, seed, 3000.0 * (1 + seed), budget=budget, atari=True)
    fig = _draw(tmp_path)["aggregate"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, sorted(ax.get_ylim()))):
            shown = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            boxes = [
                t.get_window_extent(renderer) for t in shown if lo <= t.get_position()[axis is ax.yaxis] <= hi
            ]
            assert not _overlaps(boxes)
            assert all(page.x0 <= b.x0 and b.x1 <= page.x1 for b in boxes)
    assert not _overlaps([ax.xaxis.label.get_window_extent(renderer) for ax in fig.axes])
    assert len(fig.axes) == 4 and len(fig.axes[0].get_yticklabels()) == 6
    assert not any(t.get_visible() and t.get_text() for t in fig.axes[1].get_yticklabels())  # shared rows


def test_pdfs_embed_truetype_fonts_not_type_3(frozen_sweep):
    write_report(frozen_sweep, reps=50)
    pdfs = sorted((frozen_sweep / "figures").glob("*.pdf"))
    assert {p.stem for p in pdfs} >= {"return_vs_flops", "replay_memory", "resident_memory", "aggregate"}
    for pdf in pdfs:
        data = pdf.read_bytes()
        assert b"/Type3" not in data and b"/FontFile2" in data  # Type 42: embedded TrueType


def test_probability_of_improvement_and_profiles_beside_iqm_with_enough_runs(tmp_path):
    finals = {"curl": [300.0, 500.0, 700.0], "curl+seer": [400.0, 600.0, 650.0]}
    for agent, values in finals.items():
        for seed, final in enumerate(values):
            write_run(tmp_path, "cartpole-swingup", agent, seed, final)
    runs, _ = run_table(tmp_path)
    poi = improvement(runs, reps=50).iloc[0]
    expected = metrics.probability_of_improvement(
        np.array(finals["curl+seer"])[:, None] / 1000, np.array(finals["curl"])[:, None] / 1000
    )
    assert (poi["agent"], poi["over"]) == ("curl+seer", "curl") and poi["probability"] == pytest.approx(
        expected
    )
    assert poi["ci_low"] <= poi["probability"] <= poi["ci_high"]
    drawn = _draw(tmp_path)
    ax = drawn["probability_of_improvement"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P(curl+seer > curl) (0.6 GB)"]
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(expected)
    profile = drawn["performance_profiles"].axes[0]
    assert len(profile.get_lines()) == 2 and profile.get_lines()[0].get_ydata()[0] == 1.0  # all runs above 0
    md = write_report(tmp_path, reps=50)
    assert f"P(curl+seer > curl) = {expected:.3f}" in md
    assert pd.read_csv(tmp_path / "improvement.csv")["probability"].iloc[0] == pytest.approx(expected)


def test_no_improvement_or_profiles_with_too_few_runs(tmp_path):
    for agent in ("curl", "curl+seer"):
        for seed in range(2):  # 2 seeds x 1 env: too few scores to compare distributions
            write_run(tmp_path, "cartpole-swingup", agent, seed, 500.0)
    drawn = _draw(tmp_path)
    assert (
        "aggregate" in drawn
        and "probability_of_improvement" not in drawn
        and "performance_profiles" not in drawn
    )
    write_report(tmp_path, reps=50)
    assert pd.read_csv(tmp_path / "improvement.csv").empty


def test_summary_tex_is_a_booktabs_table_with_escaped_labels(frozen_sweep):
    assert escape("curl+seer[freeze_at=22]") == r"curl+seer{[}freeze\_at=22{]}"
    assert (
        escape("a&b%c$d#e{f}~^\\") == r"a\&b\%c\$d\#e\{f\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    write_report(frozen_sweep, reps=50)
    tex = (frozen_sweep / "summary.tex").read_text()
    lines = tex.splitlines()
    rules = [ln for ln in lines if ln.startswith("\\") and "rule" in ln]
    assert rules == ["\\toprule", "\\midrule", "\\bottomrule"]
    rows = lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]
    assert len(rows) == 2 and all(r.count(" & ") == 8 and r.endswith(" \\\\") for r in rows)
    assert rows[1].startswith("cartpole-swingup & curl+seer & 0.6 & 2/2 & 500.5 {[}")
    assert tex == format_latex(summary(*run_table(frozen_sweep)))
