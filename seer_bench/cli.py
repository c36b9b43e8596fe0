"""Command line: `bench.py [run] --suite S ...` (default), `bench.py profile --suite S ...`,
`bench.py report --out DIR`, `bench.py check --suite S`, `bench.py list`.

Every input is validated before the first run starts; bad input prints one line and exits 2 (3 for
`check`, whose 2 means "the records cannot decide").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from seer_bench.errors import ConfigError
from seer_bench.records import atomic_file

SUBCOMMANDS = ("run", "list", "profile", "report", "check")
BAD_CHECK_INPUT = (
    3  # `check` already gives 2 its own meaning (the records cannot decide): bad input or a crash
)


def _csv(kind: type):
    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values, got {text!r}"
            ) from None

    return parse


class _Parser(argparse.ArgumentParser):
    """Bad input is reported like every other: one line, exit 2. Abbreviations are off: `--seed 3` must
    not silently mean `--seeds 3` (three seeds)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:
        raise ConfigError(message)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    """Flags that pick runs from a suite: shared by `run` and `profile`."""
    parser.add_argument("--suite", required=True, help="suite name in suites/ or a path to a .toml file")
    parser.add_argument("--scale", help="named scale of the suite (smoke, quick, paper, ...)")
    parser.add_argument(
        "--envs", type=_csv(str), help="comma-separated tasks, e.g. cartpole-swingup,walker-walk"
    )
    parser.add_argument("--agents", type=_csv(str), help="comma-separated agents, e.g. curl")
    parser.add_argument(
        "--budget-gb", type=_csv(float), help="replay memory budget(s) in GB (1e9 bytes), comma-separated"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V[,V...]",
        help="override or sweep any agent or SEER setting, e.g. --set seer.freeze_at=5000,10000 --set "
        "agent.batch_size=128,512: every combination runs as a variant labelled in its run id "
        "(curl+seer[batch_size=128,freeze_at=5000]), so the baseline and its variants share one --out; "
        "seer.* settings apply to <base>+seer agents only",
    )
    seer = parser.add_argument_group("SEER (agents named <base>+seer; other agents ignore these)")
    seer.add_argument(
        "--freeze-at",
        type=int,
        help="T_f in agent steps for every env (default: the suite's); to sweep it or keep several in one "
        "--out, use --set seer.freeze_at=N[,N...]",
    )
    seer.add_argument(
        "--num-copies",
        type=int,
        help="latents stored per observation, each of an independent random crop (default: the suite's; 4 on "
        "dmc6, 1 for der)",
    )
    seer.add_argument("--latent-dtype", choices=("float32", "float16"), help="storage type of latents")
    seer.add_argument(
        "--seer-split",
        help="freeze point, a layer boundary (default: the suite's): curl fc (the paper) or conv1..conv4; "
        "der "
        "conv2 (the paper) or conv1",
    )
    seer.add_argument(
        "--seer-capacity",
        choices=("budget", "pixel", "public"),
        help="latent replay size after T_f (default: the suite's): budget (fill the byte budget; dmc6), "
        "pixel (keep the pixel replay's capacity; the public Atari scripts, atari8) or public "
        "(the public DMC code's formula)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench.py", description="seer-bench: return, FLOPs and memory of pixel RL agents")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_run(sub.add_parser("run", help="run a suite (the default subcommand)"))
    prof = sub.add_parser("profile", help="FLOPs per update and action, bytes per transition, capacities")
    _add_selection(prof)
    prof.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")
    prof.add_argument(
        "--timing",
        action="store_true",
        help="instead of FLOPs and bytes: where a step's seconds go (the run's time ledger) in each phase "
        "(random, pixels, frozen), on a real run's loop for --timing-steps agent steps each",
    )
    prof.add_argument("--timing-steps", type=int, default=200, help="timed agent steps per phase (--timing)")
    prof.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (--timing)")
    prof.add_argument(
        "--out",
        type=Path,
        help="also write profile.md and profile.json there (e.g. beside a sweep's records)",
    )
    report = sub.add_parser("report", help="summary.csv, aggregates.csv and summary.md from the records")
    where = report.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="directory holding runs/ (what `--out` was for the sweep)")
    where.add_argument("--suite", help="read reports/<suite>, the sweep's default output directory")
    check = sub.add_parser(
        "check",
        help="evaluate efficiency claims on the records: exit 0 all hold, 1 one "
        "fails, 2 the records cannot decide, 3 bad input (a malformed claims file)",
    )
    check.add_argument(
        "--suite", help="reads reports/<suite> and suites/<suite>.claims.toml unless given below"
    )
    check.add_argument("--out", type=Path, help="directory holding runs/ (default reports/<suite>)")
    check.add_argument("--claims", type=Path, help="claims file (default suites/<suite>.claims.toml)")
    listing = sub.add_parser("list", help="show suites, agents, envs and scales, or the runs of an --out")
    listing.add_argument(
        "--out", type=Path, help="list the runs recorded there: status and env steps reached"
    )
    return parser


def _add_run(run: argparse.ArgumentParser) -> None:
    _add_selection(run)
    run.add_argument("--seeds", type=int, help="number of seeds (0..N-1)")
    run.add_argument("--steps", type=int, help="environment steps per run (agent steps x action repeat)")
    run.add_argument("--eval-every", type=int, help="environment steps between evaluations")
    run.add_argument(
        "--action-repeat",
        type=int,
        help="action repeat (Atari: frame skip) of every env; default: the suite's, and for a task outside "
        "it PlaNet's for the six PlaNet tasks, the suite's frame skip for Atari games, 2 for other tasks",
    )
    run.add_argument("--replay-layout", choices=("paper", "compact"), help="pixel replay layout")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument(
        "--replay-device",
        choices=("host", "device"),
        help="where the replay keeps pixels and latents: host memory (default), or the run's device as "
        "tensors, cropped there (no host round trip per batch; for GPU runs)",
    )
    run.add_argument("--out", type=Path, help="output directory (default reports/<suite>)")
    run.add_argument(
        "--train-log-every", type=int, default=100, help="updates averaged into each train.csv row"
    )
    run.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write each run's metrics as TensorBoard scalars under <run dir>/tensorboard/ "
        "(needs the tensorboard extra)",
    )
    ex = run.add_argument_group(
        "execution (re-running a command skips finished runs, resumes interrupted ones)"
    )
    ex.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: in this machine's processes (default); ray: tasks on a Ray cluster",
    )
    ex.add_argument(
        "--jobs", type=int, default=1, help="local: runs at a time, each in its own process when > 1"
    )
    ex.add_argument(
        "--address", help="ray: cluster address, e.g. ray://head:10001 or auto (default: a local one)"
    )
    ex.add_argument(
        "--cpus-per-run",
        type=float,
        help="CPUs (torch threads) per run (default: local all cores, --jobs the cores shared out, ray 1)",
    )
    ex.add_argument(
        "--gpus-per-run", type=float, default=0.0, help="ray: GPUs per run; 0.25 puts 4 runs on a GPU"
    )
    ex.add_argument(
        "--eval-workers",
        type=int,
        help="processes that play each evaluation's episodes side by side, one batched policy forward per "
        "step (default: the run's cores, at most one per episode; 0 or 1: in the run's process); the "
        "returns do not depend on it",
    )
    ex.add_argument(
        "--async-env",
        action="store_true",
        help="step each run's training env in a worker process while the agent updates (the same results)",
    )
    ex.add_argument(
        "--checkpoint-every",
        type=int,
        help="environment steps between checkpoints (default: the evaluation interval; 0: none)",
    )


def cmd_list() -> int:
    from seer_bench.agents import AGENTS
    from seer_bench.suites import available_suites, load_suite

    print("agents: " + ", ".join(AGENTS))
    for name in available_suites():
        suite = load_suite(name)
        print(f"\nsuite {name}: {suite.description}")
        print("  envs (action repeat): " + ", ".join(f"{e} ({r})" for e, r in suite.envs.items()))
        budgets = ", ".join(f"{b:g}" for b in suite.budget_gb)
        print(f"  agents: {', '.join(suite.agents)}; budget {budgets} GB; layout {suite.replay_layout}")
        for scale, body in suite.scales.items():
            default = " (default)" if scale == suite.default_scale else ""
            repeat = body.get("action_repeat")
            repeat = f"; action repeat {_per_env_text(repeat)}" if repeat is not None else ""
            print(
                f"  scale {scale}{default}: {body['steps']} env steps, eval every {body['eval_every']} "
                f"({body['eval_episodes']} episodes), seeds {_seeds_text(body['seeds'])}{repeat}"
            )
    return 0


def cmd_list_runs(out: Path) -> int:
    """The runs recorded under `out` (and planned there), one line each: id, status, env steps reached."""
    from seer_bench.reports.tables import run_table

    if not (out / "runs").is_dir() and not (out / "plan.json").exists():
        raise ConfigError(f"{out}: no runs recorded there (no runs/ directory)")
    from seer_bench.records import read_progress, run_dir

    runs, _ = run_table(out)
    for r in runs.sort_values(["agent", "env", "budget_gb", "seed"]).itertuples():
        run_id = r.run_id
        # a running run is where its heartbeat says, not at its last evaluation
        beat = read_progress(run_dir(out, run_id)) if r.status == "running" else None
        reached = beat["env_steps"] if beat else int(r.stopped_env_steps or 0)
        heard = f", last heartbeat {time.time() - beat['time']:.0f} s ago" if beat and "time" in beat else ""
        print(f"{run_id}: {r.status}, {reached:,}/{int(r.target_env_steps):,} env steps{heard}")
    return 0


def _per_env_text(value: int | dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)


def _seeds_text(seeds: int | list[int]) -> str:
    return ", ".join(map(str, seeds)) if isinstance(seeds, list) else f"0..{seeds - 1}"


def _specs(suite, args: argparse.Namespace, **flags) -> list:
    """The suite's RunSpecs under the selection flags (and `flags`, the subcommand's own)."""
    from seer_bench.agents import AGENTS
    from seer_bench.envs import KNOWN_ENVS
    from seer_bench.suites import Overrides, resolve

    overrides = Overrides(
        scale=args.scale,
        envs=_distinct("--envs", args.envs),
        agents=_distinct("--agents", args.agents),
        budgets_gb=_distinct("--budget-gb", args.budget_gb),
        freeze_at=args.freeze_at,
        num_copies=args.num_copies,
        latent_dtype=args.latent_dtype,
        seer_split=args.seer_split,
        seer_capacity=args.seer_capacity,
        sets=_sets(args.set),
        **{k: v for k, v in flags.items() if v is not None},
    )
    return resolve(suite, overrides, AGENTS, KNOWN_ENVS)


def _sets(texts: list[str]) -> dict:
    """--set flags as {setting: values}; a setting given twice is refused (one flag lists its values)."""
    from seer_bench.variants import parse_set

    sets: dict = {}
    for text in texts:
        key, values = parse_set(text)
        if key in sets:
            raise ConfigError(f"--set {key} is given twice; list its values in one flag: --set {key}=a,b")
        sets[key] = values
    return sets


def _distinct(flag: str, values: list | None) -> list | None:
    """`values` without repeats, saying so: `--agents curl,curl` would otherwise train one run twice into
    the same directory."""
    if values is None:
        return None
    kept = list(dict.fromkeys(values))
    if len(kept) < len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        print(f"bench.py: {flag} lists {', '.join(repeated)} more than once; each runs once", file=sys.stderr)
    return kept


def cmd_profile(args: argparse.Namespace) -> int:
    from seer_bench.profile import format_profile, profile, to_json
    from seer_bench.runner import check_spec
    from seer_bench.suites import load_suite

    if args.timing and args.timing_steps < 1:  # before any env is built
        raise ConfigError(f"--timing-steps must be >= 1 agent step, got {args.timing_steps}")
    specs = _specs(load_suite(args.suite), args, seeds=1, device=args.device if args.timing else None)
    for spec in specs:
        check_spec(spec, memory=False)  # a profile allocates no replay of the budget
    if args.out:
        _writable(args.out, REPORT_FREE_BYTES)
    if args.timing:
        text, data = _timing(specs, args.timing_steps)
    else:
        rows, unsupported = profile(specs)
        text, data = format_profile(rows, unsupported), to_json(rows)
    print(data if args.json else text)
    if args.out:
        for name, content in (("profile.md", text), ("profile.json", data)):
            with atomic_file(args.out / name) as f:
                f.write(content + "\n")
        print(f"written: {args.out / 'profile.md'}, {args.out / 'profile.json'}", file=sys.stderr)
    return 0


def _timing(specs: list, steps: int) -> tuple[str, str]:
    """`profile --timing`'s table and JSON (seer_bench.timing_profile)."""
    from seer_bench import timing_profile

    results = timing_profile.profile_timing(specs, steps, warmup=3)
    return "\n\n".join(map(timing_profile.format_timing, results)), timing_profile.to_json(results)


def cmd_run(args: argparse.Namespace) -> int:
    from seer_bench.executors import ExecutorOptions, plan, run_sweep
    from seer_bench.interrupts import as_interrupted, raise_on_signals
    from seer_bench.records import write_plan
    from seer_bench.runner import RunOptions, check_spec
    from seer_bench.suites import load_suite

    suite = load_suite(args.suite)
    specs = _specs(
        suite,
        args,
        seeds=args.seeds,
        steps=args.steps,
        eval_every=args.eval_every,
        replay_layout=args.replay_layout,
        action_repeat=args.action_repeat,
        device=args.device,
        replay_device=args.replay_device,
    )
    checked = set()
    for spec in specs:  # one check per distinct (agent, env, budget): seeds do not change sizes
        if (key := (spec.label, spec.env, spec.budget_gb)) not in checked:
            check_spec(spec)
            checked.add(key)
    every = args.checkpoint_every if args.checkpoint_every is not None else min(s.eval_every for s in specs)
    opts = ExecutorOptions(
        executor=args.executor,
        jobs=args.jobs,
        address=args.address,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        run=RunOptions(
            checkpoint_every=every,
            train_log_every=args.train_log_every,
            tensorboard=args.tensorboard,
            eval_workers=args.eval_workers,
            async_env=args.async_env,
        ),
    )
    opts.validate()
    out = args.out or Path("reports") / suite.name
    _writable(out)
    todo, done = plan(specs, out)  # refuses a run directory recorded with another config, before any work
    write_plan(out, {spec.run_id: spec.to_dict() for spec in specs})  # reports show runs that never start
    saving = f"checkpoints every {every:,} env steps" if every else "no checkpoints"
    jobs = f", {opts.jobs} at a time" if opts.jobs > 1 else ""
    print(
        f"{len(specs)} run(s) of suite {suite.name}, scale {specs[0].scale}, into {out}: {len(todo)} to run "
        f"({opts.executor}{jobs}), {len(done)} already finished; {saving}",
        flush=True,
    )
    try:
        with raise_on_signals():
            outcomes = run_sweep(todo, len(done), out, opts)
    except KeyboardInterrupt as e:
        return _interrupted(as_interrupted(e))
    skipped = [o for o in outcomes if o.status == "skipped"]
    if skipped:
        print(
            f"{len(skipped)} run(s) skipped, another process owns them:\n"
            + "\n".join(f"  {o.run_id}: {o.text}" for o in skipped),
            file=sys.stderr,
        )
    return _sweep_ended(out, [o for o in outcomes if o.status == "failed"])


def _interrupted(e) -> int:
    """One line for Ctrl-C or SIGTERM (no traceback): where the runs stopped and how to go on."""
    runs = sorted(e.runs, key=lambda r: -r[1])
    where = f"at env step {runs[0][1]:,} of {runs[0][0]}" if runs else "before any run started"
    others = f" (and {len(runs) - 1} other run(s))" if len(runs) > 1 else ""
    print(f"interrupted {where}{others}; run the same command to resume", file=sys.stderr)
    return e.exit_code


RUN_FREE_BYTES = 64 * 2**20  # below this a sweep's first checkpoint would fill the disk
REPORT_FREE_BYTES = 8 * 2**20  # tables and figures


def _writable(out: Path, need: int = RUN_FREE_BYTES) -> None:
    """Refuse an --out that cannot take records (read-only, full) in one line, before any run starts:
    otherwise the first write fails as a traceback, or a run fails at its first checkpoint."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable: {e.strerror or e}") from None
    free = shutil.disk_usage(out).free
    if free < need:
        raise ConfigError(
            f"--out {out}: only {free / 2**20:.1f} MiB free on its filesystem, less than the "
            f"{need // 2**20} MiB this needs; free space or choose another --out"
        )


def _sweep_ended(out: Path, failed: list) -> int:
    """Write and print the report, list failures; exit 1 when a run failed or the report could not be made."""
    reported = True
    try:  # the runs are done and recorded whatever happens here: a report error must not hide their outcome
        _report(out)
    except Exception as e:  # noqa: BLE001
        print(
            f"the report failed ({type(e).__name__}: {e}); rebuild it with: "
            f"python bench.py report --out {out}",
            file=sys.stderr,
        )
        reported = False
    if failed:
        print(
            f"{len(failed)} run(s) failed (all failures: {out / 'failures.csv'}):\n"
            + "\n".join(f"  {o.run_id}: {o.text}" for o in failed),
            file=sys.stderr,
        )
    return 1 if failed or not reported else 0


def _report(out: Path) -> None:
    """Write the report of the records under `out`, print its tables and where everything went."""
    from seer_bench.reports import write_report

    print(write_report(out), end="")
    print(
        f"written: {out / 'summary.md'}, {out / 'summary.tex'}, {out / 'summary.csv'}, "
        f"{out / 'aggregates.csv'}, {out / 'improvement.csv'}, {out / 'failures.csv'}, "
        f"{out / 'figures'}/"
    )


def cmd_report(args: argparse.Namespace) -> int:
    from seer_bench.suite_files import suite_path

    out = args.out if args.out is not None else Path("reports") / suite_path(args.suite).stem
    if not (out / "runs").is_dir():
        raise ConfigError(f"{out}: no runs/ directory here; pass the --out of a sweep")
    _writable(out, REPORT_FREE_BYTES)
    try:
        _report(out)
    except OSError as e:  # the disk filled while writing: name it; the records themselves are untouched
        raise ConfigError(f"cannot write the report into {out}: {e}") from None
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from seer_bench.reports import run_table
    from seer_bench.reports.claims import evaluate, exit_code, format_verdicts, load_claims
    from seer_bench.suite_files import SUITES_DIR, suite_path

    if args.suite is None and (args.out is None or args.claims is None):
        raise ConfigError("check needs --suite, or both --out and --claims")
    name = suite_path(args.suite).stem if args.suite else None
    out = args.out if args.out is not None else Path("reports") / name
    claims = load_claims(
        args.claims if args.claims is not None else SUITES_DIR / f"{name}.claims.toml", args.suite
    )
    if not (out / "runs").is_dir():
        raise ConfigError(f"{out}: no runs/ directory here; pass the --out of a sweep")
    verdicts = evaluate(claims, *run_table(out))
    print(format_verdicts(verdicts))
    return exit_code(verdicts)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "run")
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "list": lambda a: cmd_list_runs(a.out) if a.out else cmd_list(),
            "profile": cmd_profile,
            "report": cmd_report,
            "check": cmd_check,
        }
        return commands.get(args.command, cmd_run)(args)
    except ConfigError as e:
        print(f"bench.py: error: {e}", file=sys.stderr)
        return BAD_CHECK_INPUT if argv[0] == "check" else 2
    except Exception:  # a crash of the gate must not read as "a claim fails" (1) or "undecided" (2)
        if argv[0] != "check":
            raise
        traceback.print_exc()
        return BAD_CHECK_INPUT
