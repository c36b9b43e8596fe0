"""`--tensorboard`: a run's records, also as TensorBoard scalars under `<run dir>/tensorboard/`.

metrics.csv and train.csv stay the records every report reads; this observer only mirrors their rows as
they are written, for watching runs live in TensorBoard. The runner calls it after writing each row (the
agent never sees it), and every scalar's global step is the row's env steps, the axis of every report.

The `tensorboard` package is an optional extra (`pip install -e '.[tensorboard]'`): `check_available`
refuses the flag in one line before any run starts when it is missing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seer_bench.errors import ConfigError
from seer_bench.instrument.flops import CATEGORIES
from seer_bench.instrument.timing import CATEGORIES as TIME_CATEGORIES
from seer_bench.instrument.timing import column as time_column

DIR = "tensorboard"

# metrics.csv column -> scalar tag: returns, memory, FLOPs and time
METRIC_TAGS = {
    "eval_return": "eval/return",
    "eval_return_std": "eval/return_std",
    "hns": "eval/hns",
    "rss_bytes": "memory/rss_bytes",
    "rss_peak_bytes": "memory/rss_peak_bytes",
    "replay_bytes": "memory/replay_bytes",
    "replay_peak_bytes": "memory/replay_peak_bytes",
    "gpu_bytes": "memory/gpu_bytes",
    "gpu_alloc_bytes": "memory/gpu_alloc_bytes",
    "gpu_reserved_bytes": "memory/gpu_reserved_bytes",
    "update_flops": "flops/update_flops",
    "cum_flops": "flops/cum_flops",
    **{f"cum_flops_{c}": f"flops/cum_flops_{c}" for c in CATEGORIES},
    "wall_s": "time/wall_s",
    "train_s": "time/train_s",
    "eval_s": "time/eval_s",
    "update_s_mean": "time/update_s_mean",
    **{time_column(c): f"time_ledger/{c}_s" for c in TIME_CATEGORIES},
}


def check_available() -> None:
    """Raise ConfigError (one line, exit 2) when the tensorboard package cannot be imported."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--tensorboard needs the tensorboard package: pip install 'seer-bench[tensorboard]' "
            "(or pip install tensorboard)"
        ) from None


def _measured(value: Any) -> bool:
    """A value worth a point: not empty (no GPU, outside Atari) and not NaN (before the first update)."""
    return value is not None and value != "" and not math.isnan(float(value))


class TensorBoardLog:
    """Writes metrics.csv rows (METRIC_TAGS) and train.csv rows (`train/<metric>`: the window's mean) as
    scalars. `kept_through_env_steps` (a resumed run): the steps its checkpoint had seen; the scalars a
    previous attempt logged after them are purged, as the resumed run logs them again."""

    def __init__(self, run_path: Path, kept_through_env_steps: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = kept_through_env_steps + 1 if kept_through_env_steps is not None else None
        self.writer = SummaryWriter(log_dir=str(run_path / DIR), purge_step=purge)

    def metrics_row(self, row: dict[str, Any]) -> None:
        """One evaluation's scalars, flushed: evaluations are rare, and TensorBoard shows them at once."""
        for column, tag in METRIC_TAGS.items():
            if _measured(row.get(column)):
                self.writer.add_scalar(tag, float(row[column]), global_step=int(row["env_steps"]))
        self.writer.flush()

    def train_row(self, row: dict[str, Any]) -> None:
        self.writer.add_scalar(
            f"train/{row['metric']}", float(row["mean"]), global_step=int(row["env_steps"])
        )

    def close(self) -> None:
        self.writer.close()
