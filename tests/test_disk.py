"""A full or read-only disk: refused in one line before training, and a run that fills the disk part way
is recorded failed at the step it stopped, leaving no temp file behind."""

from pathlib import Path

from conftest import tiny_spec

from seer_bench.cli import main
from seer_bench.executors import execute
from seer_bench.records import last_event, read_events, run_dir
from seer_bench.runner import RunOptions

SMOKE = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl"]


def fill(where: Path, leave_bytes: int) -> None:
    """Fill `where`'s filesystem until `leave_bytes` are free (a real full disk, not a mock)."""
    import shutil

    with open(where / "ballast", "wb") as f:
        f.write(b"\0" * (shutil.disk_usage(where).free - leave_bytes))


def test_a_read_only_out_is_refused_in_one_line(tmpfs, capsys):
    out = tmpfs(4, read_only=True)
    assert main([*SMOKE, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out} is not writable: Read-only file system" in err


def test_a_full_out_is_refused_in_one_line_by_run_and_report(tmpfs, capsys):
    out = tmpfs(16)
    (out / "runs").mkdir()
    fill(out, 2**20)
    assert main([*SMOKE, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}: only 1.0 MiB free" in err and "less than the 64 MiB" in err
    assert main(["report", "--out", str(out)]) == 2
    assert "less than the 8 MiB this needs" in capsys.readouterr().err


def test_a_checkpoint_that_fills_the_disk_fails_the_run_at_its_step_and_leaves_no_temp_file(tmpfs):
    out = tmpfs(64)
    # action repeat 8; a checkpoint every 5 agent steps (40 env steps), the first before any update
    spec = tiny_spec("curl", agent_overrides={"batch_size": 8, "init_steps": 5, "hidden_dim": 64})
    fill(out, 3 * 2**20)  # room for the records, not for the first checkpoint (agent, optimizers, replay)
    outcome = execute(spec, out, RunOptions(checkpoint_every=40))
    path = run_dir(out, spec.run_id)
    assert (
        outcome.status == "failed"
        and f"{path / 'checkpoint.pt'}: the checkpoint could not be written" in (outcome.text)
    )
    failed = last_event(read_events(path), "failed")
    assert failed["env_steps"] == 40  # the first checkpoint's step, not progress.json's last write
    assert not list(path.glob("*.tmp")) and not (path / "checkpoint.pt").exists()
