"""Bad input: one clear line on stderr, exit code 2, before any training."""

import json

import pytest

from seer_bench.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--suite", "dmc7"], "unknown suite 'dmc7'"),
        (["--suite", "dmc6", "--envs", "cartpole-jump"], "unknown env 'cartpole-jump'"),
        (
            ["--suite", "dmc6", "--envs", "pong"],
            "env 'pong' (Atari game) cannot run in suite dmc6, which runs DeepMind Control tasks",
        ),
        (["--suite", "dmc6", "--action-repeat", "0"], "--action-repeat must be a positive integer, got 0"),
        (["--suite", "dmc6", "--agents", "curl,drq"], "unknown agent 'drq'"),
        (["--suite", "dmc6", "--scale", "huge"], "unknown scale 'huge'"),
        (["--suite", "dmc6", "--steps", "0"], "--steps must be a positive integer, got 0"),
        (["--suite", "dmc6", "--steps", "-5"], "--steps must be a positive integer, got -5"),
        (["--suite", "dmc6", "--eval-every", "0"], "--eval-every must be a positive integer"),
        (["--suite", "dmc6", "--budget-gb", "-1"], "--budget-gb must be positive"),
        (["--suite", "dmc6", "--budget-gb", "lots"], "expected comma-separated float values, got 'lots'"),
        (["--suite", "dmc6", "--budget-gb", "nan"], "--budget-gb must be positive, got nan"),
        (["--suite", "dmc6", "--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
        (["--suite", "dmc6", "--device", "cpu:1"], "--device must be auto, cpu, cuda or cuda:N, got 'cpu:1'"),
        (
            ["--suite", "dmc6", "--envs", "cartpole-swingup", "--eval-every", "300"],
            "cartpole-swingup: --eval-every 300 is in env steps and must be a multiple of the action repeat "
            "(8)",
        ),
        (
            ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--budget-gb", "0.0001"],
            "replay budget 0.0001 GB (100000 bytes) holds 0 transitions in the 'paper' layout, fewer than "
            "one "
            "batch of 16; "
            "it needs at least 2880208 bytes",
        ),
        (
            ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--steps", "80"],
            "leave no update before or at learn start (20 agent steps)",
        ),
        (["--suite", "dmc6", "--freeze-at", "0"], "--freeze-at must be a positive integer, got 0"),
        (["--suite", "dmc6", "--num-copies", "0"], "--num-copies must be a positive integer, got 0"),
        (
            ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--freeze-at", "10"],
            "freeze_at 10 agent steps is not after the first update (agent step 20)",
        ),
        (
            ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--freeze-at", "50"],
            "freeze_at 50 agent steps is not before the run ends (50 agent steps = 400 env steps)",
        ),
        (
            ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--seer-split", "conv9"],
            "seer split 'conv9' is not a layer boundary of curl+seer; choose from conv1, conv2, conv3, "
            "conv4, "
            "fc",
        ),
        (
            ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--latent-dtype", "int8"],
            "argument --latent-dtype: invalid choice: 'int8'",
        ),
        (
            ["--suite", "atari8", "--envs", "alien", "--agents", "curl"],
            "agent curl takes continuous actions, env alien has discrete ones",
        ),
        (
            ["--suite", "atari8", "--envs", "aliens"],
            "unknown env 'aliens': it is neither a DeepMind Control task nor an Atari game known here",
        ),
        (
            ["--suite", "atari8", "--envs", "cartpole-swingup"],
            "env 'cartpole-swingup' (DeepMind Control task) cannot run in suite atari8, which runs Atari "
            "games",
        ),
        (
            ["--suite", "dmc6", "--envs", "cartpole-swingup", "--agents", "der"],
            "agent der takes discrete actions, env cartpole-swingup has continuous ones",
        ),
        (
            ["--suite", "atari8", "--scale", "smoke", "--envs", "alien", "--num-copies", "4"],
            "num_copies 4: der+seer does not augment, so every copy would be the same latent; set num_copies "
            "= 1",
        ),
        (
            ["--suite", "atari8", "--scale", "smoke", "--envs", "alien", "--seer-capacity", "double"],
            "argument --seer-capacity: invalid choice: 'double'",
        ),
        (
            ["--suite", "atari8", "--scale", "smoke", "--envs", "alien", "--seer-split", "fc"],
            "seer split 'fc' is not a layer boundary of der+seer; choose from conv1, conv2",
        ),
        (
            ["--suite", "dmc6", "--envs", "cartpole-swingupp"],
            "it is neither a DeepMind Control task nor an Atari game known here (did you mean "
            "cartpole-swingup, cartpole-swingup_sparse",
        ),
        (["--suite", "dmc6", "--seed", "3"], "unrecognized arguments: --seed 3"),  # not --seeds 3
        (["--suite", "dmc6", "--budget", "1"], "unrecognized arguments: --budget 1"),
        (
            ["--suite", "dmc6", "--envs", "cartpole-swingup", "--budget-gb", "0.05,0.050000000001"],
            "budgets 0.05 and 0.050000000001 GB share the run directory curl/cartpole-swingup/budget_0.05/"
            "seed_0",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, out, err = run_cli(capsys, *argv, "--out", str(tmp_path))
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing ran


def write_suite(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


GOOD = open(__file__.replace("tests/test_cli.py", "suites/dmc6.toml")).read()
ATARI = open(__file__.replace("tests/test_cli.py", "suites/atari8.toml")).read()
DRQ = open(__file__.replace("tests/test_cli.py", "suites/dmc6_drqv2.toml")).read()


@pytest.mark.parametrize(
    "text,message",
    [
        ('agents = ["curl"\n', "bad.toml: malformed TOML"),
        (
            DRQ.replace("[agent_by_env.cheetah-run]", "[agent_by_env.cheetah-walk]"),
            "bad.toml: agent_by_env.cheetah-walk: not an env of this suite",
        ),
        (
            DRQ.replace("[agent_by_env.walker-walk]", "[agent_by_env.walker-walk]\nnsteps = 2"),
            "bad.toml: agent_by_env.walker-walk: agent drqv2: unknown setting 'nsteps'",
        ),
        (
            DRQ.replace("{ cartpole-swingup = 8 }", "{ cartpole-swingup = 0 }"),
            "bad.toml: scales.quick.action_repeat.cartpole-swingup: must be positive, got 0",
        ),
        (
            DRQ.replace("{ cartpole-swingup = 8 }", "{ pendulum-swingup = 8 }"),
            "bad.toml: scales.quick.action_repeat.pendulum-swingup: not an env of this suite",
        ),
        (
            GOOD.replace("steps = 400\n", "steps = -400\n"),
            "bad.toml: scales.smoke.steps: must be positive, got -400",
        ),
        (GOOD.replace("eval_every = 200\n", ""), "bad.toml: scales.smoke: missing key 'eval_every'"),
        (
            GOOD.replace("seeds = 1\nbudget_gb = 0.02", "seeds = 1\nbudget = 0.02"),
            "bad.toml: scales.smoke: unknown key(s) budget",
        ),
        (
            GOOD.replace("cartpole-swingup = 8", 'cartpole-swingup = "eight"'),
            "bad.toml: envs.cartpole-swingup: expected",
        ),
        (GOOD.replace("batch_size = 16", "batch_sz = 16"), "agent curl: unknown setting 'batch_sz'"),
        (
            GOOD.replace('default_scale = "paper"', 'default_scale = "full"'),
            "default_scale 'full' is not one of the scales",
        ),
        (
            GOOD.replace('agents = ["curl", "curl+seer"]', "agents = []"),
            "bad.toml: agents: the list is empty",
        ),
        (GOOD.replace("num_copies = 4", "copies = 4"), "bad.toml: seer: unknown key(s) copies"),
        (
            GOOD.replace("num_copies = 4", 'num_copies = "four"'),
            "bad.toml: seer.num_copies: expected int, got 'four'",
        ),
        (
            GOOD.replace('latent_dtype = "float32"', 'latent_dtype = "int8"'),
            "bad.toml: seer: latent_dtype must be one of float32, float16, got 'int8'",
        ),
        (
            GOOD.replace("cartpole-swingup = 10000", "cartpole-balance = 10000"),
            "bad.toml: seer.freeze_at.cartpole-balance: not an env of this suite",
        ),
        (
            GOOD.replace("freeze_at = 30", "freeze_at = -3"),
            "bad.toml: scales.smoke.freeze_at: must be positive, got -3",
        ),
        (GOOD.replace("init_steps = 20", "init_steps = 0"), "agent curl: init_steps must be positive, got 0"),
        (
            GOOD.replace("init_steps = 20", 'init_steps = 20\nencoder_optimizer = "rad"'),
            "agent curl: encoder_optimizer must be one of seer, curl, got 'rad'",
        ),
        (
            GOOD.replace('capacity = "budget"', 'capacity = "double"'),
            "bad.toml: seer: capacity must be one of budget, pixel, public, got 'double'",
        ),
        (
            GOOD.replace("seeds = 1\nbudget_gb = 0.02", "seeds = []\nbudget_gb = 0.02"),
            "bad.toml: scales.smoke.seeds: the list of seeds is empty",
        ),
        (
            GOOD.replace("seeds = 1\nbudget_gb = 0.02", "seeds = [3, 3]\nbudget_gb = 0.02"),
            "bad.toml: scales.smoke.seeds: a seed is listed twice",
        ),
        (
            GOOD.replace("seeds = 1\nbudget_gb = 0.02", "seeds = [-1]\nbudget_gb = 0.02"),
            "bad.toml: scales.smoke.seeds: seeds must be non-negative",
        ),
        (
            GOOD.replace("budget_gb = 0.6 ", "budget_gb = [0.6, -1] "),
            "bad.toml: budget_gb: must be positive, got -1",
        ),
        (
            GOOD.replace("init_steps = 20", "init_steps = 20\nimage_size = 100"),
            "image_size 100 leaves no room",
        ),
        (
            GOOD.replace("init_steps = 20", "init_steps = 20\ncritic_tau = 1.5"),
            "critic_tau must be in [0, 1], got 1.5",
        ),
        (
            GOOD.replace("[seer]", "[env_options]\nnoop_max = 30\n\n[seer]"),
            "bad.toml: env_options: unknown DeepMind Control option 'noop_max'; known: size, camera_id, "
            "frame_stack",
        ),
        (
            GOOD.replace("[seer]", "[env_options]\nsize = 0\n\n[seer]"),
            "bad.toml: env_options: size must be positive, got 0",
        ),
        (
            GOOD.replace("[seer]", '[env_options]\ncamera_id = "top"\n\n[seer]'),
            "bad.toml: env_options: DeepMind Control option 'camera_id' expects int, got 'top'",
        ),
        (
            ATARI.replace("noop_max = 30 ", "noop_maxx = 30 "),
            "bad.toml: env_options: unknown Atari option 'noop_maxx'",
        ),
        (ATARI.replace("noop_max = 30 ", "noop_max = -1 "), "bad.toml: env_options: noop_max"),
        (
            ATARI.replace("repeat_action_probability = 0.0", "repeat_action_probability = 1.5"),
            "bad.toml: env_options: repeat_action_probability",
        ),
        (
            ATARI.replace("terminal_on_life_loss = true", "terminal_on_life_loss = 1"),
            "bad.toml: env_options: Atari option 'terminal_on_life_loss' expects bool, got 1",
        ),
        (ATARI.replace("multi_step = 5", "multi_step = 0"), "agent der: multi_step must be positive, got 0"),
        (
            ATARI.replace("learn_start = 100", "learn_start = 3"),
            "agent der: learn_start 3 must be >= multi_step 5",
        ),
    ],
)
def test_malformed_suite_names_file_and_key(capsys, tmp_path, text, message):
    env = "alien" if "atari" in text[:40] else "cartpole-swingup"
    code, _, err = run_cli(
        capsys,
        "--suite",
        write_suite(tmp_path, text),
        "--scale",
        "smoke",
        "--envs",
        env,
        "--out",
        str(tmp_path),
    )
    assert code == 2 and message in err, err


@pytest.mark.parametrize(
    "text,message",
    [
        (
            GOOD.replace('agents = ["curl", "curl+seer"]', 'agents = ["curl", "curl+seer", "curl"]'),
            "agents: curl",
        ),
        (GOOD.replace("budget_gb = 0.6", "budget_gb = [0.6, 0.6]"), "budget_gb: 0.6"),
    ],
)
def test_a_suite_list_naming_an_item_twice_is_refused(capsys, tmp_path, text, message):
    code, _, err = run_cli(capsys, "--suite", write_suite(tmp_path, text), "--out", str(tmp_path))
    assert code == 2 and f"bad.toml: {message} listed more than once" in err, err


@pytest.mark.parametrize(
    "flag,values", [("--agents", "curl,curl"), ("--envs", "cartpole-swingup,cartpole-swingup")]
)
def test_a_list_flag_naming_an_item_twice_runs_it_once_and_says_so(capsys, flag, values):
    argv = ["profile", "--suite", "dmc6", "--envs", "cartpole-swingup", "--agents", "curl", "--json"]
    argv[argv.index(flag) + 1] = values
    code, out, err = run_cli(capsys, *argv)
    assert code == 0 and f"{flag} lists {values.split(',')[0]} more than once; each runs once" in err
    assert len({(r["agent"], r["env"]) for r in json.loads(out)}) == 1


def test_list_shows_suites_agents_envs_and_scales(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for word in (
        "agents: curl",
        "suite dmc6",
        "ball_in_cup-catch (4)",
        "scale smoke",
        "scale quick",
        "scale paper (default)",
    ):
        assert word in out


def test_a_suite_naming_an_unknown_env_is_one_line_before_any_run(capsys, tmp_path):
    suite = write_suite(tmp_path, GOOD.replace("cartpole-swingup", "cartpole-swingupp"))
    code, _, err = run_cli(capsys, "--suite", suite, "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1, err
    assert "bad.toml: envs.cartpole-swingupp: neither a DeepMind Control task nor an Atari game" in err
    assert "did you mean cartpole-swingup" in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_binary_suite_or_claims_file_is_one_line(capsys, tmp_path, command):
    binary = tmp_path / "bad.toml"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    flags = (
        ["--suite", str(binary)] if command == "run" else ["--out", str(tmp_path), "--claims", str(binary)]
    )
    code, _, err = run_cli(capsys, command, *flags)
    assert code == (2 if command == "run" else 3) and err.count("\n") == 1, err
    assert f"{binary}: not a text (UTF-8) TOML file" in err


def test_list_out_shows_each_recorded_or_planned_run_with_its_status(capsys, tmp_path):
    from conftest import write_run

    write_run(tmp_path, "cartpole-swingup", "curl", 0, 500.0)
    write_run(tmp_path, "cartpole-swingup", "curl", 1, 100.0, status="failed")
    assert main(["list", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "curl/cartpole-swingup/budget_0.6/seed_0: finished, 200/200 env steps",
        "curl/cartpole-swingup/budget_0.6/seed_1: failed, 0/200 env steps",  # its failed event names no step
    ]
    code, _, err = run_cli(capsys, "list", "--out", str(tmp_path / "nothing"))
    assert code == 2 and "no runs recorded there" in err
