"""`python -m seer_bench.worker OUT RUN_OPTIONS_JSON THREADS SPEC_JSON`: one run in its own process, for
`bench.py --jobs N`. Exits 0 when the run finished, 1 when it failed (the failure is in its records),
75 when another process owns the run (its lock),
128 + the signal when SIGINT or SIGTERM stopped it (an `interrupted` event says where). It dies with the
sweep that started it, whatever killed that: an orphan would go on writing into --out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seer_bench.executors import SKIPPED_EXIT, execute
from seer_bench.interrupts import as_interrupted, die_with_parent, raise_on_signals
from seer_bench.runner import RunOptions
from seer_bench.suites import RunSpec


def main(argv: list[str]) -> int:
    out, options, threads, spec = argv
    die_with_parent()
    try:
        with raise_on_signals():
            outcome = execute(
                RunSpec.from_dict(json.loads(spec)),
                Path(out),
                RunOptions(**json.loads(options)),
                int(threads),
            )
    except KeyboardInterrupt as e:
        return as_interrupted(e).exit_code
    return {"finished": 0, "skipped": SKIPPED_EXIT}.get(outcome.status, 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
