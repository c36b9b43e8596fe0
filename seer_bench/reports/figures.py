"""Paper-style figures of a sweep, PNG and PDF, sized for a two-column paper (7 in wide at most, 8 pt text).

Every curve is the mean over seeds with a Student-t 95% band; an agent keeps its colour in every figure,
and SEER's freeze point T_f is a dotted vertical line in the agent's colour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
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
    "pdf.fonttype": 42,  # TrueType (Type 42) fonts in PDF and PS: venues reject Type 3
    "ps.fonttype": 42,
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
    fig: plt.Figure,
    agents: list[str],
    seeds: dict[str, set[int]],
    dashed: set[str] = frozenset(),
    freezes: dict[str, str] | None = None,
    share: bool = False,
) -> None:
    """One legend for the figure, above the panels: an agent's colour is the same in every panel; n is
    its number of seeds (a range when panels differ); a dotted line per SEER agent names its T_f (`freezes`:
    agent -> text), and `share` names the shaded area (the replay's part of the resident memory)."""
    handles = []
    for agent in agents:
        counts = sorted(seeds[agent])  # n is always shown: a reader must see a single seed too
        n = f" (n={counts[0]})" if len(counts) == 1 else f" (n={counts[0]}-{counts[-1]})"
        style = "--" if agent in dashed else "-"
        handles.append(plt.Line2D([], [], color=color(agent, agents), lw=1.2, ls=style, label=agent + n))
    for agent, text in (freezes or {}).items():
        handles.append(plt.Line2D([], [], color=color(agent, agents), lw=1, ls=":", label=text))
    if share:
        handles.append(Patch(facecolor="0.6", alpha=0.5, hatch="////", label="replay's share of it"))
    # as many columns as fit the figure's width (about 15 characters an inch at 7 pt); a figure too narrow
    # for its longest label (variant labels, T_f entries) widens up to a page, and grows a line per row
    column = (max(len(h.get_label()) for h in handles) + 5) / 15
    fig.set_figwidth(max(fig.get_figwidth(), min(7.0, column)))
    ncols = min(len(handles), max(1, int(fig.get_figwidth() // column)))
    fig.set_figheight(fig.get_figheight() + 0.14 * (-(-len(handles) // ncols) - 1))
    fig.legend(handles=handles, loc="outside upper center", ncols=ncols, frameon=False)


@dataclass(frozen=True)
class Series:
    """What a per-env figure draws: `y` (mean and band over seeds) against env steps or FLOPs.

    `steps` draws each value over the interval since the previous evaluation (a peak since the last row, a
    capacity changed after it). `freeze` inserts SEER's T_f into the step curve, so what changes there
    changes at the freeze and not at an evaluation beside it: until T_f the value is `before` at the next
    evaluation (a peak held until the freeze), or without `before` the previous evaluation's value (a
    capacity); from T_f to the next evaluation it is `after` there (what is held after the freeze), or
    without `after` y. `share` is a part of `y` drawn as a shaded area under it (the replay's part of RSS).
    """

    y: str
    label: str
    steps: bool = False
    freeze: bool = False
    before: str | None = None
    after: str | None = None
    share: Series | None = None
    from_zero: bool = False


def _band(ax: plt.Axes, x: np.ndarray, ys: np.ndarray, c: str, steps: bool) -> None:
    """Mean of the seeds' curves (rows of `ys`, NaN where a seed has not evaluated yet) and its 95% t
    interval over the seeds present at each point."""
    n = np.sum(~np.isnan(ys), axis=0)
    mean = np.nanmean(ys, axis=0)
    ax.plot(x, mean, color=c, lw=1.2, drawstyle="steps-pre" if steps else "default")
    if n.max() > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.nanstd(ys, axis=0, ddof=1) if len(ys) > 1 else np.zeros_like(mean)
            half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
        ax.fill_between(x, mean - half, mean + half, color=c, alpha=0.2, lw=0, step="pre" if steps else None)


def _at_freeze(
    x: np.ndarray, ys: np.ndarray, before: np.ndarray | None, after: np.ndarray | None, freezes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`ys` (seeds x evaluations at `x`, drawn as steps) with a point at each seed's T_f (`freezes`, NaN
    without one): the runner evaluates before it freezes, so the evaluation at or before T_f holds the old
    value and the next one the new; the inserted point holds the old value (`before` at the next evaluation
    where given, else the previous evaluation's) and the new one (`after` at the next evaluation where
    given) starts after it. Seeds that do not freeze there keep their curve."""
    for t in sorted(set(freezes[~np.isnan(freezes)]), reverse=True):
        nxt = int(np.searchsorted(x, t, side="right"))
        if nxt == 0 or nxt == len(x):  # no evaluation on one side: nothing to place
            continue
        old = (before if before is not None else ys)[:, nxt if before is not None else nxt - 1]
        here = freezes == t
        if after is not None:
            ys[:, nxt] = np.where(here, after[:, nxt], ys[:, nxt])
        x, ys = np.insert(x, nxt, t), np.insert(ys, nxt, np.where(here, old, ys[:, nxt]), axis=1)
        before = None if before is None else np.insert(before, nxt, old, axis=1)
        after = None if after is None else np.insert(after, nxt, old, axis=1)
    return x, ys


def _grid(runs: pd.DataFrame, column: str, like: pd.DataFrame) -> np.ndarray:
    """`column` as seeds x evaluations, on the rows and columns of `like`."""
    grid = runs.pivot_table(index="seed", columns="env_steps", values=column, dropna=False)
    return grid.reindex(index=like.index, columns=like.columns).to_numpy(float)


def _seed_curves(runs: pd.DataFrame, x: str, s: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (mean over seeds at each evaluation), the seeds x evaluations values of `s` and each seed's T_f in
    env steps; a seed still running is NaN where it has not evaluated yet, so the mean at each point is over
    the seeds present there."""
    ys = runs.pivot_table(index="seed", columns="env_steps", values=s.y)
    evals = ys.columns.to_numpy(float)
    xs = evals if x == "env_steps" else _grid(runs, x, ys)
    xs, values = np.nanmean(np.atleast_2d(xs), axis=0), ys.to_numpy(float)
    freezes = runs.groupby("seed")["freeze_env_steps"].first().reindex(ys.index).to_numpy(float)
    if s.freeze and x == "env_steps" and not np.isnan(freezes).all():
        before, after = (
            _grid(runs, c, ys) if c is not None and c in runs else None for c in (s.before, s.after)
        )
        xs, values = _at_freeze(evals, values, before, after, freezes)
    return xs, values, freezes


def _freeze_at(runs: pd.DataFrame, x: str) -> float | None:
    """T_f on this axis (None without one): env steps, or the FLOPs counted when it froze (older records
    without them: interpolated)."""
    tf = runs["freeze_env_steps"].dropna()
    if not len(tf):
        return None
    if x == "env_steps":
        return float(tf.iloc[0])
    recorded = runs["freeze_tflop"].dropna()
    if len(recorded):
        return float(recorded.mean())
    mean = runs.groupby("env_steps")[x].mean()
    return float(np.interp(tf.iloc[0], mean.index.to_numpy(float), mean.to_numpy(float)))


def _draw(ax: plt.Axes, runs: pd.DataFrame, x: str, s: Series, c: str) -> tuple[int, float | None]:
    """One agent's curve of `s` in one panel, its share under it and its T_f (a dotted line); returns its
    number of seeds and where T_f is on the x axis."""
    xs, values, _ = _seed_curves(runs, x, s)
    _band(ax, xs, values, c, s.steps)
    if s.share is not None and s.share.y in runs:
        sx, shares, _ = _seed_curves(runs.dropna(subset=[s.share.y]), x, s.share)
        share = np.nanmean(shares, axis=0)
        ax.fill_between(sx, 0, share, color=c, alpha=0.3, lw=0, step="pre", hatch="////")
        ax.plot(sx, share, color=c, lw=0.8, ls="--", drawstyle="steps-pre")
        _share_text(ax, c, share[-1] / np.nanmean(values, axis=0)[-1])
    tf = _freeze_at(runs, x)
    if tf is not None:
        ax.axvline(tf, color=c, ls=":", lw=1)
    return len(values), tf


def _share_text(ax: plt.Axes, c: str, fraction: float) -> None:
    """The replay's share of the resident memory at the last evaluation, in the agent's colour in the
    panel's lower right (one line per agent): at small budgets the shaded share is too thin to read."""
    row = sum(1 for t in ax.texts if t.get_gid() == "share")
    ax.text(0.98, 0.04 + 0.09 * row, f"replay {100 * fraction:.1f}% of RSS", color=c, gid="share",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=6)  # fmt: skip


def _zero_visible_log(ax: plt.Axes, data: pd.DataFrame, x: str) -> None:
    """A log x axis that still shows x = 0 (the untrained evaluation, where curl and curl+seer share their
    start): symmetric log, linear below the smallest nonzero x, with 0 labelled."""
    positive = data.loc[data[x] > 0, x]
    linthresh = 10 ** np.floor(np.log10(positive.min()))
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.4)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(ticker.SymmetricalLogLocator(linthresh=linthresh, base=10))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _per_env(data: pd.DataFrame, x: str, xlabel: str, s: Series, log_x: bool = False) -> plt.Figure:
    """One panel per env x budget: `s` against x for each agent, mean and band over its seeds."""
    panels, agents = sorted(set(zip(data["env"], data["budget_gb"]))), sorted(data["agent"].unique())
    seeds: dict[str, set[int]] = {a: set() for a in agents}
    freezes: dict[str, set[float]] = {}
    fig, axes = _panels(len(panels))
    for ax, (env, budget) in zip(axes.flat, panels):
        for agent in agents:
            runs = data[(data["env"] == env) & (data["budget_gb"] == budget) & (data["agent"] == agent)]
            runs = runs.dropna(subset=[x, s.y])  # a NaN return (a diverged evaluation) is not a point to draw
            if runs.empty:
                continue
            n, tf = _draw(ax, runs, x, s, color(agent, agents))
            seeds[agent].add(n)
            if tf is not None:
                freezes.setdefault(agent, set()).add(tf)
        ax.set_title(f"{env}\n{budget:g} GB replay")
        ax.set_xlabel(xlabel)
        if log_x:
            _zero_visible_log(ax, data, x)
        else:  # no offset text ("1e-9" under the axis label) on small FLOP counts
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_compact))
        ax.xaxis.set_major_locator(ticker.MaxNLocator(4)) if not log_x else None
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(_compact))
        if s.from_zero:
            ax.set_ylim(bottom=0)
    for ax in axes[:, 0]:
        ax.set_ylabel(s.label)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    unit = "env steps" if x == "env_steps" else "TFLOP"
    number = _compact if x == "env_steps" else lambda v: f"{v:.3g}"  # 150k env steps, 0.0653 TFLOP
    marks = {
        a: f"T_f of {a}" + (f" ({number(min(v))} {unit})" if len(v) == 1 else "") for a, v in freezes.items()
    }
    _legend(fig, [a for a in agents if seeds[a]], seeds, freezes=marks, share=s.share is not None)
    return fig


def _by_budget(table: pd.DataFrame) -> plt.Figure:
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
    return fig


def _row_label(agent: str, budget: float) -> str:
    """A y tick label of the aggregate and improvement figures: a variant's settings on a line of their own
    (curl+seer[freeze_at=22] would not fit beside a narrow panel)."""
    name, bracket, settings = agent.partition("[")
    return f"{name} ({budget:g} GB)" + (f"\n[{settings}" if bracket else "")


def _rows_figure(keys: list, rows: list[tuple[str, float]], lines: int) -> tuple[plt.Figure, np.ndarray]:
    """One panel per key, side by side, sharing one labelled row per (agent, budget): tall enough for
    every label's `lines`, so tick labels never overlap."""
    height = 0.17 * lines + 0.06 * len(rows) + 0.9
    fig, axes = plt.subplots(
        1,
        len(keys),
        figsize=(min(7.0, 1.7 * len(keys) + 1.6), height),
        squeeze=False,
        sharey=True,
        constrained_layout=True,
    )
    labels = [_row_label(agent, budget) for agent, budget in rows]
    axes[0, 0].set_yticks(range(len(rows)), labels)
    axes[0, 0].set_ylim(len(rows) - 0.4, -0.6)  # the first row on top
    for ax in axes.flat:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
    return fig, axes


def _aggregate(agg: pd.DataFrame) -> plt.Figure:
    """IQM and mean with bootstrap CIs, one row per agent (x budget), one panel per metric and score."""
    agg = agg.dropna(subset=["value"])
    keys = sorted(agg.groupby(["score", "metric"]).groups)
    agents = sorted(agg["agent"].unique())
    rows = sorted(set(zip(agg["agent"], agg["budget_gb"])), key=lambda r: (r[1], r[0]))
    lines = sum(_row_label(*r).count("\n") + 1 for r in rows)
    fig, axes = _rows_figure(keys, rows, lines)
    for ax, (score, metric) in zip(axes.flat, keys):
        for r in agg[(agg["score"] == score) & (agg["metric"] == metric)].itertuples():
            ax.errorbar(
                r.value,
                rows.index((r.agent, r.budget_gb)),
                xerr=np.nan_to_num([[r.value - r.ci_low], [r.ci_high - r.value]]),
                fmt="o",
                ms=3,
                capsize=2,
                color=color(r.agent, agents),
            )
        # the score on a line of its own: side by side, "IQM (human-normalized score)" runs into the next
        ax.set_xlabel(f"{metric}\n({score} score)" if score == "human-normalized" else f"{metric}\n({score})")
    return fig


def _improvement(poi: pd.DataFrame) -> plt.Figure:
    """rliable's probability of improvement with its 95% CI, one row per compared pair, one panel per
    domain: 0.5 (dashed) is no difference."""
    keys = sorted(poi["domain"].unique())
    pairs = sorted(set(zip(poi["agent"], poi["over"], poi["budget_gb"])), key=lambda r: (r[2], r[0], r[1]))
    agents = sorted(set(poi["agent"]) | set(poi["over"]))
    rows = [(f"P({a} > {b})", budget) for a, b, budget in pairs]
    fig, axes = _rows_figure(keys, rows, sum(_row_label(*r).count("\n") + 1 for r in rows))
    for ax, kind in zip(axes.flat, keys):
        for r in poi[poi["domain"] == kind].itertuples():
            ax.errorbar(
                r.probability,
                pairs.index((r.agent, r.over, r.budget_gb)),
                xerr=[[r.probability - r.ci_low], [r.ci_high - r.probability]],
                fmt="o",
                ms=3,
                capsize=2,
                color=color(r.agent, agents),
            )
        ax.axvline(0.5, color="0.5", ls="--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"probability of improvement ({kind})")
    return fig


def _profiles(prof: pd.DataFrame) -> plt.Figure:
    """rliable's performance profiles, one panel per budget x domain: the fraction of runs (seeds x envs)
    scoring above each threshold, with its 95% bootstrap band."""
    panels, agents = sorted(set(zip(prof["domain"], prof["budget_gb"]))), sorted(prof["agent"].unique())
    fig, axes = _panels(len(panels))
    for ax, (kind, budget) in zip(axes.flat, panels):
        cell = prof[(prof["domain"] == kind) & (prof["budget_gb"] == budget)]
        for agent, rows in cell.groupby("agent"):
            c = color(agent, agents)
            ax.plot(rows["tau"], rows["fraction"], color=c, lw=1.2)
            ax.fill_between(rows["tau"], rows["ci_low"], rows["ci_high"], color=c, alpha=0.2, lw=0)
        ax.set_title(f"{kind}, {budget:g} GB replay")
        ax.set_xlabel("score threshold " + ("(human-normalized)" if kind == "atari" else "(return / 1000)"))
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of runs above")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    seeds = prof.groupby("agent")["seeds"].agg(lambda n: {int(v) for v in n}).to_dict()
    _legend(fig, agents, seeds)
    return fig


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


def _ablation(key: str, rows: pd.DataFrame, table: pd.DataFrame) -> plt.Figure:
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
    return fig


def figures(
    runs: pd.DataFrame,
    curves: dict[tuple, pd.DataFrame],
    table: pd.DataFrame,
    agg: pd.DataFrame,
    poi: pd.DataFrame | None = None,
    prof: pd.DataFrame | None = None,
) -> dict[str, plt.Figure]:
    """Every figure the records support, by file name (without suffix); drawn in STYLE, not yet saved."""
    data = _curves(runs, curves) if not runs.empty else pd.DataFrame()
    if data.empty:
        return {}
    data = _memory_columns(data.assign(cum_tflop=data["cum_flops"] / 1e12))
    trained = data.loc[data["cum_tflop"] > 0, "cum_tflop"]
    wide = len(trained) > 0 and trained.max() / trained.min() > 30  # log x once the range spans decades
    steps = "environment steps"
    with plt.rc_context(STYLE):
        out = {
            "return_vs_flops": _per_env(data, "cum_tflop", "cumulative TFLOP", RETURN, log_x=wide),
            "return_vs_env_steps": _per_env(data, "env_steps", steps, RETURN),
            "replay_capacity": _per_env(data, "env_steps", steps, CAPACITY),
            "replay_memory": _per_env(data, "env_steps", steps, REPLAY),
            "resident_memory": _per_env(data, "env_steps", steps, RSS),
        }
        if table.groupby(["env", "agent"])["budget_gb"].nunique().max() > 1:
            out["return_vs_budget"] = _by_budget(table)
        if not agg.empty and agg["value"].notna().any():
            out["aggregate"] = _aggregate(agg)
        if poi is not None and not poi.empty:
            out["probability_of_improvement"] = _improvement(poi)
        if prof is not None and not prof.empty:
            out["performance_profiles"] = _profiles(prof)
        for key, rows in swept_settings(table).items():
            out[f"ablation_{key.partition('.')[2]}"] = _ablation(key, rows, table)
    return out


RETURN = Series("eval_return", "return")
CAPACITY = Series("replay_capacity", "replay capacity (transitions)", steps=True, freeze=True, from_zero=True)
REPLAY = Series(
    "replay_peak_mb",
    "replay memory (MB, peak)",
    steps=True,
    freeze=True,
    before="replay_peak_mb",
    after="replay_mb",
    from_zero=True,
)
RSS = Series("rss_mb", "peak resident memory (MB)", steps=True, share=REPLAY, from_zero=True)


def _memory_columns(data: pd.DataFrame) -> pd.DataFrame:
    """MB columns of the memory figures: what the replay held at each evaluation, its peak since the one
    before (runs recorded before replay_peak_bytes: what it held), and peak RSS (before the memory sampler:
    RSS at each evaluation)."""
    held = data["replay_bytes"] / 1e6
    peak = data["replay_peak_bytes"] / 1e6 if "replay_peak_bytes" in data else held
    rss = data["rss_peak_bytes"] if "rss_peak_bytes" in data else data["rss_bytes"]
    return data.assign(replay_mb=held, replay_peak_mb=peak.fillna(held), rss_mb=rss / 1e6)


def write_figures(
    out: Path,
    runs: pd.DataFrame,
    curves: dict[tuple, pd.DataFrame],
    table: pd.DataFrame,
    agg: pd.DataFrame,
    poi: pd.DataFrame | None = None,
    prof: pd.DataFrame | None = None,
) -> list[Path]:
    """`figures`, as PNG and PDF under out/figures; returns the files."""
    drawn = figures(runs, curves, table, agg, poi, prof)
    if not drawn:
        return []
    folder = Path(out) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):  # the PDF font type is read when saving
        return [file for name, fig in drawn.items() for file in _save(fig, folder / name)]
