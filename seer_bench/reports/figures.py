"""Paper-style figures of a sweep, PNG and PDF, sized for a two-column paper (7 in wide at most, 8 pt text).

Every curve is the mean over seeds with a Student-t 95% band; an agent keeps its colour in every figure,
and SEER's freeze point T_f is a dotted vertical line in the agent's colour.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from scipy import stats  # noqa: E402

COLORS = {"curl": "#1f77b4", "curl+seer": "#ff7f0e", "der": "#2ca02c", "der+seer": "#d62728"}
FALLBACK = plt.get_cmap("tab10").colors
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}


def color(agent: str, agents: list[str]) -> str:
    return COLORS.get(agent, FALLBACK[sorted(agents).index(agent) % len(FALLBACK)])


def _panels(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 4)
    grid = -(-n // cols)
    fig, axes = plt.subplots(
        grid,
        cols,
        figsize=(min(7.0, 1.9 * cols + 0.4), 1.7 * grid + 0.5),
        squeeze=False,
        constrained_layout=True,
    )
    return fig, axes


def _band(ax: plt.Axes, x: np.ndarray, ys: np.ndarray, c: str, label: str, steps: bool) -> None:
    """Mean of the seeds' curves (rows of `ys`, NaN where a seed has not evaluated yet) and its 95% t
    interval over the seeds present at each point; `steps` draws each value over the interval since the
    previous evaluation (a peak since the last row, a capacity changed after it)."""
    n = np.sum(~np.isnan(ys), axis=0)
    mean = np.nanmean(ys, axis=0)
    ax.plot(x, mean, color=c, label=label, lw=1.2, drawstyle="steps-pre" if steps else "default")
    if n.max() > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.nanstd(ys, axis=0, ddof=1) if len(ys) > 1 else np.zeros_like(mean)
            half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
        ax.fill_between(x, mean - half, mean + half, color=c, alpha=0.2, lw=0, step="pre" if steps else None)


def _curves(runs: pd.DataFrame, curves: dict[tuple, pd.DataFrame]) -> pd.DataFrame:
    """Every evaluation row of every run that did not fail (failed ones are counted in the tables) and has
    trusted records (not a planned run yet to start, not an untrusted one), with its run's keys and T_f in
    env steps and TFLOP where SEER froze."""
    frames = [
        curves[(r.env, r.agent, r.budget_gb, r.seed)].assign(
            env=r.env,
            agent=r.agent,
            budget_gb=r.budget_gb,
            seed=r.seed,
            freeze_env_steps=r.freeze_env_steps,
            freeze_tflop=r.freeze_flops / 1e12,
        )
        for r in runs.itertuples()
        if r.status not in ("failed", "untrusted") and (r.env, r.agent, r.budget_gb, r.seed) in curves
    ]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _save(fig: plt.Figure, path: Path) -> list[Path]:
    files = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    fig.savefig(files[0], dpi=200)
    fig.savefig(files[1])
    plt.close(fig)
    return files


def _compact(v: float, _pos: object = None) -> str:
    """Tick labels: 150k, 1.2M, and small values as they are (EngFormatter would write 0.5 as 500m)."""
    return f"{v / 1e6:g}M" if abs(v) >= 1e6 else f"{v / 1e3:g}k" if abs(v) >= 1e4 else f"{v:g}"


def _legend(
    fig: plt.Figure, agents: list[str], seeds: dict[str, set[int]], dashed: set[str] = frozenset()
) -> None:
    """One legend for the figure, above the panels: an agent's colour is the same in every panel; n is
    its number of seeds (a range when panels differ)."""
    handles = []
    for agent in agents:
        counts = sorted(seeds[agent])  # n is always shown: a reader must see a single seed too
        n = f" (n={counts[0]})" if len(counts) == 1 else f" (n={counts[0]}-{counts[-1]})"
        style = "--" if agent in dashed else "-"
        handles.append(plt.Line2D([], [], color=color(agent, agents), lw=1.2, ls=style, label=agent + n))
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4), frameon=False)


def _per_env(
    data: pd.DataFrame,
    x: str,
    xlabel: str,
    ylabel: str,
    y: str,
    path: Path,
    log_x: bool = False,
    steps: bool = False,
) -> list[Path]:
    """One panel per env x budget: y against x for each agent, mean and band over its seeds."""
    panels, agents = sorted(set(zip(data["env"], data["budget_gb"]))), sorted(data["agent"].unique())
    seeds: dict[str, set[int]] = {a: set() for a in agents}
    fig, axes = _panels(len(panels))
    for ax, (env, budget) in zip(axes.flat, panels):
        for agent in agents:
            runs = data[(data["env"] == env) & (data["budget_gb"] == budget) & (data["agent"] == agent)]
            runs = runs.dropna(subset=[x, y])  # a NaN return (a diverged evaluation) is not a point to draw
            if runs.empty:
                continue
            # every evaluation of every seed that did not fail; a seed still running is NaN where it has not
            # evaluated yet, so the mean at each point is over the seeds present there
            ys = runs.pivot_table(index="seed", columns="env_steps", values=y)
            seeds[agent].add(len(ys))
            evals = ys.columns.to_numpy(float)
            xs = (
                runs.pivot_table(index="seed", columns="env_steps", values=x).mean().to_numpy(float)
                if x != "env_steps"
                else evals
            )
            keep = xs > 0 if log_x else np.ones_like(xs, bool)  # a log axis cannot show the untrained start
            c = color(agent, agents)
            _band(ax, xs[keep], ys.to_numpy(float)[:, keep], c, agent, steps)
            tf = runs["freeze_env_steps"].dropna()
            if len(tf):  # T_f on this axis: the FLOPs counted when it froze (older records: interpolated)
                recorded = runs["freeze_tflop"].dropna() if x == "cum_tflop" else pd.Series(dtype=float)
                at = (
                    float(tf.iloc[0])
                    if x == "env_steps"
                    else float(recorded.mean())
                    if len(recorded)
                    else float(np.interp(tf.iloc[0], evals, xs))
                )
                ax.axvline(at, color=c, ls=":", lw=1)
        ax.set_title(f"{env}\n{budget:g} GB replay")
        ax.set_xlabel(xlabel)
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        else:  # no offset text ("1e-9" under the axis label) on small FLOP counts
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_compact))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(_compact))
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    _legend(fig, [a for a in agents if seeds[a]], seeds)
    return _save(fig, path)


def _by_budget(table: pd.DataFrame, path: Path) -> list[Path]:
    """Final return against the replay budget, one panel per env, mean and 95% CI over
    finished seeds per agent."""
    envs, agents = sorted(table["env"].unique()), sorted(table["agent"].unique())
    fig, axes = _panels(len(envs))
    for ax, env in zip(axes.flat, envs):
        for agent in agents:
            rows = table[(table["env"] == env) & (table["agent"] == agent)].sort_values("budget_gb")
            if rows.empty:
                continue
            err = np.vstack(
                [rows["return_mean"] - rows["return_ci_low"], rows["return_ci_high"] - rows["return_mean"]]
            )
            ax.errorbar(
                rows["budget_gb"],
                rows["return_mean"],
                yerr=np.nan_to_num(err),
                color=color(agent, agents),
                marker="o",
                ms=3,
                lw=1.2,
                capsize=2,
                label=agent,
            )
        ax.set_title(env)
        ax.set_xlabel("replay budget (GB)")
        ax.set_xscale("log")
        ax.set_xticks(sorted(table["budget_gb"].unique()))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    for ax in axes[:, 0]:
        ax.set_ylabel("final return")
    for ax in axes.flat[len(envs) :]:
        ax.set_visible(False)
    _legend(fig, agents, {a: {int(n)} for a, n in table.groupby("agent")["finished"].max().items()})
    return _save(fig, path)


def _aggregate(agg: pd.DataFrame, path: Path) -> list[Path]:
    """IQM and mean with bootstrap CIs, one row per agent (x budget), one panel per metric and score."""
    agg = agg.dropna(subset=["value"])
    keys = sorted(agg.groupby(["score", "metric"]).groups)
    agents = sorted(agg["agent"].unique())
    fig, axes = plt.subplots(
        1,
        len(keys),
        figsize=(min(7.0, 2.2 * len(keys) + 0.8), 0.35 * len(agg) / len(keys) + 0.9),
        squeeze=False,
        constrained_layout=True,
    )
    for ax, (score, metric) in zip(axes.flat, keys):
        rows = agg[(agg["score"] == score) & (agg["metric"] == metric)].reset_index(drop=True)
        for i, r in rows.iterrows():
            ax.errorbar(
                r["value"],
                i,
                xerr=np.nan_to_num([[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]]),
                fmt="o",
                ms=3,
                capsize=2,
                color=color(r["agent"], agents),
            )
        ax.set_yticks(range(len(rows)), [f"{r.agent} ({r.budget_gb:g} GB)" for r in rows.itertuples()])
        ax.set_xlabel(f"{metric} ({score} score)" if score == "human-normalized" else f"{metric} ({score})")
        ax.set_ylim(-0.6, len(rows) - 0.4)
    return _save(fig, path)


def swept_settings(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per swept setting (a `--set` or `[sweep]` key), the summary rows of the variants that set it, each
    with `value` (its value there) and `line` (the base agent and the variant's other settings)."""
    found: dict[str, list[dict]] = {}
    for row in table[table["variant"].fillna("") != ""].to_dict("records"):
        variant = json.loads(row["variant"])
        for key, value in variant.items():
            others = ",".join(f"{k.partition('.')[2]}={v}" for k, v in sorted(variant.items()) if k != key)
            line = row["base_agent"] + (f"[{others}]" if others else "")
            found.setdefault(key, []).append({**row, "value": value, "line": line})
    return {key: pd.DataFrame(rows) for key, rows in found.items() if len({r["value"] for r in rows}) > 1}


SETTING_NAMES = {"seer.freeze_at": "T_f (agent steps)"}


def _references(table: pd.DataFrame, rows: pd.DataFrame, env: str | None = None, budget: float | None = None):
    """Summary rows of the baselines the variants in `rows` are compared with (their `baseline`, e.g. curl
    for a T_f sweep), where the records hold them: drawn as dashed levels."""
    names = set(rows["baseline"].dropna()) - {""}
    pick = table[table["agent"].isin(names)]
    if env is not None:
        pick = pick[(pick["env"] == env) & (pick["budget_gb"] == budget)]
    return pick.to_dict("records")


def _ablation(key: str, rows: pd.DataFrame, table: pd.DataFrame, path: Path) -> list[Path]:
    """Final return (mean, 95% CI over finished seeds) and cumulative training FLOPs against the values of
    one swept setting, one column of panels per env x budget: the paper's ablation over T_f is this figure
    for seer.freeze_at."""
    panels, lines = sorted(set(zip(rows["env"], rows["budget_gb"]))), sorted(rows["line"].unique())
    names = sorted(set(lines) | {r["agent"] for r in _references(table, rows)})  # one colour each
    numeric = pd.api.types.is_numeric_dtype(rows["value"])
    ticks = sorted(rows["value"].unique()) if numeric else sorted(rows["value"].astype(str).unique())
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(min(7.0, 2.0 * len(panels) + 0.6), 3.6),
        squeeze=False,
        constrained_layout=True,
        sharex="col",
    )
    for col, (env, budget) in enumerate(panels):
        for line in lines:
            pick = rows[(rows["env"] == env) & (rows["budget_gb"] == budget) & (rows["line"] == line)]
            pick = pick.sort_values("value")
            x = pick["value"] if numeric else [ticks.index(str(v)) for v in pick["value"]]
            err = np.vstack(
                [pick["return_mean"] - pick["return_ci_low"], pick["return_ci_high"] - pick["return_mean"]]
            )
            style = dict(color=color(line, names), marker="o", ms=3, lw=1.2)
            axes[0, col].errorbar(x, pick["return_mean"], yerr=np.nan_to_num(err), capsize=2, **style)
            axes[1, col].plot(x, pick["cum_flops"] / 1e12, **style)
        for line in _references(table, rows, env, budget):  # what the variants are compared with
            for ax, value in ((axes[0, col], line["return_mean"]), (axes[1, col], line["cum_flops"] / 1e12)):
                ax.axhline(value, color=color(line["agent"], names), ls="--", lw=1.0)
        axes[0, col].set_title(f"{env}, {budget:g} GB")
        bottom = axes[1, col]
        bottom.set_xlabel(SETTING_NAMES.get(key, key.partition(".")[2]))
        if numeric and min(ticks) > 0 and max(ticks) / min(ticks) >= 4:
            bottom.set_xscale("log")
        bottom.set_xticks(
            ticks if numeric else range(len(ticks)), [_compact(t) if numeric else t for t in ticks]
        )
        bottom.xaxis.set_minor_formatter(ticker.NullFormatter())
        bottom.set_ylim(bottom=0)
    axes[0, 0].set_ylabel("final return")
    axes[1, 0].set_ylabel("training TFLOP")
    finished = rows.groupby("line")["finished"].agg(lambda n: {int(v) for v in n}).to_dict()
    for ref in _references(table, rows):
        finished.setdefault(ref["agent"], set()).add(int(ref["finished"]))
    _legend(fig, names, finished, dashed=set(names) - set(lines))
    return _save(fig, path)


def write_figures(
    out: Path, runs: pd.DataFrame, curves: dict[tuple, pd.DataFrame], table: pd.DataFrame, agg: pd.DataFrame
) -> list[Path]:
    """All figures the records (`run_table`'s runs and curves) support, under
    out/figures; returns the files."""
    data = _curves(runs, curves) if not runs.empty else pd.DataFrame()
    if data.empty:
        return []
    folder = Path(out) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    data = data.assign(cum_tflop=data["cum_flops"] / 1e12)
    trained = data.loc[data["cum_tflop"] > 0, "cum_tflop"]
    wide = len(trained) > 0 and trained.max() / trained.min() > 30  # log x once the range spans decades
    with plt.rc_context(STYLE):
        files += _per_env(
            data,
            "cum_tflop",
            "cumulative TFLOP",
            "return",
            "eval_return",
            folder / "return_vs_flops",
            log_x=wide,
        )
        files += _per_env(
            data, "env_steps", "environment steps", "return", "eval_return", folder / "return_vs_env_steps"
        )
        files += _per_env(
            data,
            "env_steps",
            "environment steps",
            "replay capacity (transitions)",
            "replay_capacity",
            folder / "replay_capacity",
            steps=True,
        )
        data = data.assign(rss_mb=data.get("rss_peak_bytes", data["rss_bytes"]) / 1e6)
        files += _per_env(
            data,
            "env_steps",
            "environment steps",
            "peak resident memory (MB)",
            "rss_mb",
            folder / "resident_memory",
            steps=True,
        )
        if table.groupby(["env", "agent"])["budget_gb"].nunique().max() > 1:
            files += _by_budget(table, folder / "return_vs_budget")
        if not agg.empty and agg["value"].notna().any():
            files += _aggregate(agg, folder / "aggregate")
        for key, rows in swept_settings(table).items():
            files += _ablation(key, rows, table, folder / f"ablation_{key.partition('.')[2]}")
    return files
