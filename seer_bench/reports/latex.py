"""summary.tex: the summary as a booktabs LaTeX table a paper can \\input (with \\usepackage{booktabs})."""

from __future__ import annotations

import pandas as pd

# LaTeX's special characters in text mode; brackets too, so a cell starting with "[" is never read as the
# optional argument of the row's \\ before it
ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "[": "{[}",
    "]": "{]}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}

HEADER = (
    "env & agent & budget (GB) & seeds & final return & TFLOP & FLOPs vs baseline & peak replay (MB) "
    "& peak RSS (MB) \\\\"
)


def escape(text: object) -> str:
    """`text` as LaTeX typesets it literally: agent labels hold +, [, _ and = (curl+seer[freeze_at=22])."""
    return "".join(ESCAPES.get(ch, ch) for ch in str(text))


def _num(value: float, fmt: str) -> str:
    return "--" if pd.isna(value) else format(value, fmt)


def _return(r: pd.Series) -> str:
    """Mean over finished seeds with its 95% CI, as in summary.md."""
    if pd.isna(r["return_mean"]):
        return "--"
    ci = "" if pd.isna(r["return_ci_low"]) else f" [{r['return_ci_low']:.1f}, {r['return_ci_high']:.1f}]"
    return escape(f"{r['return_mean']:.1f}{ci}")


def _row(r: pd.Series) -> str:
    ratio = r["flops_ratio_to_baseline"]
    cells = [
        escape(r["env"]),
        escape(r["agent"]),
        f"{r['budget_gb']:g}",
        f"{int(r['finished'])}/{int(r['seeds'])}",
        _return(r),
        _num(r["cum_flops"] / 1e12, ".3f"),
        "--" if pd.isna(ratio) else escape(f"{ratio:.3f}x {r['baseline']}"),
        _num(r["peak_replay_bytes"] / 1e6, ".1f"),
        _num(r["peak_rss_bytes"] / 1e6, ".0f"),
    ]
    return " & ".join(cells) + " \\\\"


def format_latex(table: pd.DataFrame) -> str:
    """The summary (one row per env x agent x budget) as a booktabs tabular; seeds are finished/all, the
    return's CI is Student t over the finished ones, "--" where not measured."""
    lines = [
        "% seer-bench summary; needs \\usepackage{booktabs}",
        "\\begin{tabular}{llrrlrlrr}",
        "\\toprule",
        HEADER,
        "\\midrule",
        *(_row(r) for _, r in table.iterrows()),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(lines) + "\n"
