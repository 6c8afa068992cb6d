"""Whatever overrides a user types, ``train`` and ``bench`` end with exit 0 or 2, never a traceback.

Hypothesis draws override sets from the real config keys (and unknown ones) with values of every
kind: right and wrong types, out-of-range numbers, empty and odd strings. The run itself is replaced
by a stand-in once the config is built, so what is exercised is everything before the training
loop: parsing, the config schema, the semantic checks, building the task, algorithm and policy.
"""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhf_zoo import cli

KEYS = [
    "seed",
    "threads",
    "device",
    "resume",
    "train.steps",
    "train.batch_prompts",
    "train.lr",
    "train.lr_schedule",
    "train.eval_every",
    "train.eval_prompts",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
    "train.grad_clip",
    "train.log_with",
    "algo.n",
    "algo.beta",
    "algo.samples",
    "algo.baseline",
    "algo.eta",
    "algo.gamma",
    "algo.k",
    "algo.quantiles",
    "algo.epochs",
    "algo.minibatches",
    "algo.clip_eps",
    "task.num_prompts",
    "task.vocab_size",
    "task.max_len",
    "task.proxy_noise",
    "bogus",
    "train.bogus",
    "algo.bogus",
    "model.name",
]
VALUES = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "null", "None", "", " ", "1e-9", "-0", "nan", "inf", "[1,2]", "{a: 1}"]),
    st.text(alphabet=string.printable, max_size=12),
)
ALGOS = st.sampled_from(["best_of_n", "reinforce", "ppo_lite", "bond", "jbond", "rloo", "vbon", "dpo", ""])
OVERRIDES = st.lists(st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4)


def _no_traceback(capsys, code):
    err = capsys.readouterr().err
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(algo=ALGOS, overrides=OVERRIDES, junk=st.sampled_from([[], ["novalue"], ["=x"], ["--frobnicate"]]))
def test_train_never_ends_in_a_traceback(monkeypatch, tmp_path, capsys, algo, overrides, junk):
    import rlhf_zoo.train as train

    def build_only(cfg, argv=None):  # everything a run checks and builds before its first step
        algo_, task, policy = train.build(cfg)
        return {"algo": algo_.name, "task": task.name, "steps": 0}

    monkeypatch.setattr(train, "run", build_only)
    args = ["train", "task=exact", f"algo={algo}", f"run_dir={tmp_path}/r", *overrides, *junk]
    _no_traceback(capsys, cli.main(args))


BENCH_KEYS = [
    "suite",
    "seeds",
    "only",
    "jobs",
    "render_only",
    "render",
    "keep_checkpoints",
    "progress",
    "docs",
    "records",
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suite=st.sampled_from(["exact", "quick", "full", "nope", ""]),
    overrides=st.lists(st.tuples(st.sampled_from(BENCH_KEYS + KEYS), VALUES), max_size=4),
)
def test_bench_never_ends_in_a_traceback(monkeypatch, tmp_path, capsys, suite, overrides):
    import rlhf_zoo.bench.runner as runner

    def no_runs(*a, **kw):  # the suite's points are validated before this is reached
        raise SystemExit(0)

    monkeypatch.setattr(runner, "run_suite", no_runs)
    args = ["bench", f"suite={suite}", f"out={tmp_path}/b", f"docs={tmp_path}/d"]
    args += [f"{k}={v}" for k, v in overrides if k not in ("out", "docs")]
    try:
        code = cli.main(args)
    except SystemExit as e:
        code = e.code
    _no_traceback(capsys, code)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["help"], ["train", "algo=bond", "-h"]])
def test_help_is_not_an_error(capsys, args):
    code = cli.main(args)
    out = capsys.readouterr()
    assert code == 0 and "usage" in out.out.lower(), out


def test_no_command_prints_the_usage_and_is_an_error(capsys):
    code = cli.main([])
    out = capsys.readouterr()
    assert code == 2 and out.out.startswith("usage: rlhf-zoo COMMAND"), out


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_the_version_flags_print_the_version(capsys, flag):
    code = cli.main([flag])
    assert code == 0 and capsys.readouterr().out.startswith("rlhf_zoo ")


def test_help_after_a_command_is_an_argument_not_a_help_flag(capsys):
    """Only -h and --help ask a command for its usage; a bare ``help`` after it is the command's argument."""
    code = cli.main(["list", "help"])
    out = capsys.readouterr()
    assert code == 2 and "list: takes no argument, got 'help'" in out.err and not out.out


def test_list_names_every_algorithm_preset_task_and_reward(capsys):
    from rlhf_zoo.algorithms.registry import known_algorithms
    from rlhf_zoo.config import presets
    from rlhf_zoo.tasks.registry import TASKS

    assert cli.main(["list"]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["algorithms"].strip().split(", ") == known_algorithms()
    assert lines["presets"].strip().split(", ") == presets("algo") and "rloo" in lines["presets"]
    assert lines["tasks"].strip().split(", ") == sorted(TASKS)
    assert "vader" in lines["rewards"] and "py:" in lines["rewards"]
