"""`python -m seer_bench.worker OUT RUN_OPTIONS_JSON THREADS SPEC_JSON`: one run in its own process, for
`bench.py --jobs N`. Exits 0 when the run finished, 1 when it failed (the failure is in its records)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seer_bench.executors import execute
from seer_bench.runner import RunOptions
from seer_bench.suites import RunSpec


def main(argv: list[str]) -> int:
    out, options, threads, spec = argv
    outcome = execute(
        RunSpec.from_dict(json.loads(spec)), Path(out), RunOptions(**json.loads(options)), int(threads)
    )
    return 0 if outcome.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
