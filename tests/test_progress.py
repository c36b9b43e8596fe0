"""The sweep's progress view, in its log-file form, reading real progress.json records."""

import io
import re
import time

from seer_bench.agents import AGENTS
from seer_bench.envs import KNOWN_ENVS
from seer_bench.progress import SweepProgress
from seer_bench.records import run_dir, write_json
from seer_bench.suites import Overrides, load_suite, resolve


def test_log_lines_count_a_resumed_runs_earlier_steps_as_done_but_not_as_speed(tmp_path):
    spec = resolve(
        load_suite("dmc6"),
        Overrides(scale="smoke", envs=["cartpole-swingup"], agents=["curl"]),
        AGENTS,
        KNOWN_ENVS,
    )[0]  # 400 env steps
    path = run_dir(tmp_path, spec.run_id)
    stream = io.StringIO()  # not a terminal: plain lines
    began = time.time()
    view = SweepProgress(tmp_path, [spec], skipped=1, stream=stream, interval=0.05, log_every=0).start()
    view.run_started(spec)
    for env_steps in (200, 300):  # resumed from a checkpoint at 200 env steps, then 100 more
        write_json(
            path / "progress.json",
            {
                "env_steps": env_steps,
                "start_env_steps": 200,
                "time": time.time(),
                "phase": "training",
                "eval_return": 12.5,
            },
        )
        time.sleep(0.3)
    view.run_ended(spec, "finished", "final eval return 12.5")
    view.close()
    elapsed = time.time() - began
    text = stream.getvalue()
    assert "sweep: 2 run(s), 1 already finished (skipped), 400 env steps to run" in text
    assert f"  {spec.run_id}: 300/400 env steps (75%)" in text and "training, eval return 12.5" in text
    assert f"run {spec.run_id} finished: final eval return 12.5 [2/2 finished, 0 running, 0 failed]" in text
    final = text.strip().splitlines()[-1]
    steps, rate = re.search(r"(\d+)/400 env steps \(([\d.]+)/s\)", final).groups()
    assert steps == "300"  # reached, earlier steps included
    # the speed is that of the 100 steps run in this sweep (300 would give 3x)
    assert 100 / elapsed <= float(rate) + 0.1 and float(rate) < 200 / elapsed
