"""`bench.py report`: tables and figures of a sweep's records, written next to them.

Reads every run under DIR/runs and writes DIR/summary.csv (one row per env x agent x budget),
DIR/aggregates.csv (IQM and mean across envs, rliable), DIR/improvement.csv (rliable's probability of
improvement, where two agents have enough runs), DIR/failures.csv (failed runs and why), DIR/summary.md
(all of them, with units, and the runs whose records are damaged: untrusted, left out of everything),
DIR/summary.tex (the summary as a booktabs table) and the figures of seer_bench.reports.figures under
DIR/figures. Each file is replaced whole
(records.atomic_file): a report interrupted half way leaves the previous one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from seer_bench.instrument.timing import CATEGORIES as TIME_CATEGORIES
from seer_bench.instrument.timing import column as time_column
from seer_bench.records import atomic_file
from seer_bench.reports.figures import write_figures
from seer_bench.reports.latex import format_latex
from seer_bench.reports.tables import aggregates, improvement, profiles, run_table, summary, unscored_games

__all__ = [
    "aggregates",
    "failures",
    "format_latex",
    "format_markdown",
    "improvement",
    "profiles",
    "run_table",
    "summary",
    "write_figures",
    "write_report",
]


def _num(value: float, fmt: str, missing: str = "") -> str:
    return missing if pd.isna(value) else format(value, fmt)


SUMMARY_HEADER = (
    "| env | agent | budget (GB) | seeds | final return, mean [95% CI] | env steps | cum. TFLOP "
    "| FLOPs vs baseline | peak replay (MB) | replay capacity | peak RSS (MB) | peak GPU (MB) | wall (min) "
    "| train (min) | eval (min) | update (ms) | status |"
)
SUMMARY_NOTE = (
    "Final return, env steps, TFLOP and times: finished seeds only (a seed's final return is the mean "
    "of its last evaluation's episodes); CI: Student t over those seeds. Wall time includes start-up, "
    "evaluation and checkpoints; train: acting, updates, env steps and SEER's conversion; eval: evaluation "
    "episodes; update: mean time of one update over the run (n/a: records from before these columns). "
    "Seeds still running are in the status column at their latest evaluation. Untrusted seeds (damaged "
    "records, listed at the end) are left out of every number. FLOPs vs baseline: cumulative training "
    "FLOPs over the baseline agent's at the same env step (fvcore convention, 1 multiply-add = 1 FLOP)."
)
AGGREGATE_NOTE = (
    "Aggregates across envs of finished runs' final scores (rliable: interquartile mean and mean, "
    "stratified bootstrap 95% CIs; agents of a budget are scored on the same envs, with only seeds "
    "finished on every one of them)."
)

UNSCORED_NOTE = (
    "Left out of the human-normalized aggregates: {games} (no human reference score in "
    "seer_bench/scores.py); reported above with raw returns only."
)


def format_markdown(
    table: pd.DataFrame, agg: pd.DataFrame, poi: pd.DataFrame | None = None, unscored: list[str] | None = None
) -> str:
    """The tables as Markdown, with units in the headers and "n/a" where a quantity was not measured;
    `unscored` names the Atari games left out of the aggregates (no human score), so that an aggregate over
    fewer games than the table shows does not pass for one over all of them."""
    if table.empty:
        return "no runs found\n"
    lines = [SUMMARY_HEADER, "|" + "---|" * 17, *map(_summary_line, table.itertuples()), "", SUMMARY_NOTE]
    lines += _time_section(table)
    if not agg.empty:
        header = "| agent | budget (GB) | score | metric | value [95% CI] | envs | seeds | runs left out |"
        lines += ["", header, "|" + "---|" * 8, *map(_aggregate_line, agg.itertuples()), "", AGGREGATE_NOTE]
    if unscored:
        lines += ["", UNSCORED_NOTE.format(games=", ".join(unscored))]
    if poi is not None and not poi.empty:
        header = "| budget (GB) | domain | probability of improvement [95% CI] | envs | seeds |"
        lines += [
            "",
            header,
            "|" + "---|" * 5,
            *map(_improvement_line, poi.itertuples()),
            "",
            IMPROVEMENT_NOTE,
        ]
    return "\n".join(lines) + "\n"


IMPROVEMENT_NOTE = (
    "Probability of improvement (rliable): the chance that a run of the first agent scores above a run of "
    "the second on an env of the cell (0.5: no difference), stratified bootstrap 95% CI; drawn where two "
    "agents have at least 3 finished scores (seeds x envs)."
)


def _improvement_line(r: Any) -> str:
    value = f"P({r.agent} > {r.over}) = {r.probability:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
    return f"| {r.budget_gb:g} | {r.domain} | {value} | {r.envs} | {r.seeds} vs {r.seeds_over} |"


def _summary_line(r: Any) -> str:
    if not np.isnan(r.return_ci_low):
        ci = f" [{r.return_ci_low:.1f}, {r.return_ci_high:.1f}]"
    else:
        ci = " (1 seed, no CI)" if r.finished == 1 else ""
    if not r.baseline:
        ratio = ""
    else:
        ratio = (
            "n/a" if np.isnan(r.flops_ratio_to_baseline) else f"{r.flops_ratio_to_baseline:.3f}x {r.baseline}"
        )
    status = r.status
    if r.running:
        status += (
            f"; running: latest return {r.running_return_mean:.1f} at >= {r.running_env_steps:,} env steps"
        )
    cells = [
        r.env, r.agent, f"{r.budget_gb:g}", r.seeds, f"{_num(r.return_mean, '.1f', 'n/a')}{ci}",
        f"{r.env_steps:,}", _num(r.cum_flops / 1e12, ".3f", "n/a"), ratio,
        _num(r.peak_replay_bytes / 1e6, ".1f", "n/a"), _num(r.replay_capacity, ",.0f", "n/a"),
        _num(r.peak_rss_bytes / 1e6, ".0f", "n/a"), _num(r.peak_gpu_bytes / 1e6, ".0f", "n/a"),
        _num(r.wall_s / 60, ".1f", "n/a"), _num(r.train_s / 60, ".1f", "n/a"),
        _num(r.eval_s / 60, ".1f", "n/a"), _num(r.update_s_mean * 1e3, ".1f", "n/a"), status,
    ]  # fmt: skip
    return "| " + " | ".join(map(str, cells)) + " |"


TIME_NOTE = (
    "Where the time went: the time ledger's seconds per kind of work (seer_bench/instrument/timing.py; "
    "exclusive: SEER's encoding is not also counted in replay, nor an update's FLOP pricing in update), as "
    "a share of wall time, mean over finished seeds; other: wall time no category covers. docs/records.md "
    "defines each category."
)


def _time_section(table: pd.DataFrame) -> list[str]:
    """The time ledger's shares of wall time per env x agent x budget (none for records from before it)."""
    timed = table[table[time_column("setup")].notna()] if time_column("setup") in table else table.iloc[:0]
    if timed.empty:
        return []
    header = "| env | agent | budget (GB) | wall (min) | " + " | ".join(TIME_CATEGORIES) + " | other |"
    lines = [
        "",
        "Where the time went (% of wall time):",
        "",
        header,
        "|" + "---|" * (len(TIME_CATEGORIES) + 5),
    ]
    for r in timed.itertuples():
        seconds = [getattr(r, time_column(c)) for c in TIME_CATEGORIES]
        shares = [100 * s / r.wall_s for s in (*seconds, r.wall_s - sum(seconds))]
        cells = [r.env, r.agent, f"{r.budget_gb:g}", f"{r.wall_s / 60:.1f}", *(f"{s:.1f}" for s in shares)]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", TIME_NOTE]


def _aggregate_line(r: Any) -> str:
    if np.isnan(r.value):
        value = "n/a (no seed finished on every env)"
    elif np.isnan(r.ci_low):
        value = f"{r.value:.3f} (1 seed, no CI)"
    else:
        value = f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
    cells = [r.agent, f"{r.budget_gb:g}", r.score, r.metric, value, r.envs, r.seeds, r.runs_left_out]
    return "| " + " | ".join(map(str, cells)) + " |"


FAILURE_COLUMNS = ["env", "agent", "budget_gb", "seed", "stopped_env_steps", "reason"]
RUN_ORDER = ["env", "agent", "budget_gb", "seed"]  # how failures.csv and summary.md's run lists are sorted


def failures(runs: pd.DataFrame) -> pd.DataFrame:
    """The failed runs, where they stopped and why (the reason their `failed` event gives)."""
    if runs.empty:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    return runs.loc[runs["status"] == "failed", FAILURE_COLUMNS].sort_values(RUN_ORDER)


def _run_list(runs: pd.DataFrame, state: str, title: str, line: Callable[[Any], str]) -> str:
    """summary.md's list of the runs in `state`, in the tables' order, one `line(run)` each ("" for none)."""
    picked = runs[runs["status"] == state] if not runs.empty else runs
    lines = [line(r) for r in picked.sort_values(RUN_ORDER).itertuples()]
    return f"\n{title}:\n\n" + "\n".join(lines) + "\n" if lines else ""


def _failed_section(runs: pd.DataFrame) -> str:
    """The failed runs (as failures.csv lists them), where each stopped and why."""
    return _run_list(
        runs,
        "failed",
        "Failed runs (also in failures.csv)",
        lambda r: f"- {r.run_id} at {r.stopped_env_steps:,} env steps: {r.reason}",
    )


def _interrupted_section(runs: pd.DataFrame) -> str:
    """Runs that stopped before finishing (a signal, or an owner that died: kill -9, a lost node), where each
    stopped: the same command resumes them from their latest checkpoint."""
    return _run_list(
        runs,
        "interrupted",
        "Interrupted runs (resume with the same command)",
        lambda r: f"- {r.run_id}: interrupted at env step {int(r.stopped_env_steps):,}",
    )


def _untrusted_section(runs: pd.DataFrame) -> str:
    """The runs whose records are damaged, each with what is wrong (file and line)."""
    return _run_list(
        runs,
        "untrusted",
        "Untrusted runs, left out of every table and figure",
        lambda r: f"- {r.run_id}: {r.damage}",
    )


def write_report(out: Path, reps: int = 2000) -> str:
    """Write summary.csv, aggregates.csv, improvement.csv, failures.csv, summary.md, summary.tex and
    figures/ under `out`; returns the Markdown."""
    runs, curves = run_table(out)
    table, agg, failed = summary(runs, curves), aggregates(runs, reps=reps), failures(runs)
    poi = improvement(runs, reps=reps) if not runs.empty else pd.DataFrame()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = (
        ("summary.csv", table),
        ("aggregates.csv", agg),
        ("improvement.csv", poi),
        ("failures.csv", failed),
    )
    for name, frame in frames:
        with atomic_file(out / name) as f:
            frame.to_csv(f, index=False)
    text = format_markdown(table, agg, poi, unscored_games(runs)) + _failed_section(runs)
    text += _interrupted_section(runs) + _untrusted_section(runs)
    for name, body in (("summary.md", text), ("summary.tex", format_latex(table) if not table.empty else "")):
        with atomic_file(out / name) as f:
            f.write(body)
    prof = profiles(runs, reps=reps) if not poi.empty else pd.DataFrame()
    write_figures(out, runs, curves, table, agg, poi, prof)
    return text
