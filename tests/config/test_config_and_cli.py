"""Config resolution and the command line: presets, validation, one-line errors before any work."""

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rlhf_zoo.config import ConfigError, compose, load_config


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["algo=dpo"], "bond"),  # the message lists the known names
        (["algo=bond", "task=imdb"], "exact"),
        (["algo=bond", "algo.bogus=1"], "bogus"),
        (["algo=bond", "algo.n=four"], "algo.n"),
        (["algo=bond", "train.stepz=3"], "stepz"),
        (["algo=bond", "algo.n=1"], "algo.n must be >= 2"),
        (["algo=bond", "train.lr=-1"], "train.lr"),
        # a negative weight decay was a traceback from torch's AdamW after the task and policy were built;
        # a negative warm-up or clipping norm ran with a schedule or clipping nobody asked for
        (["algo=bond", "train.weight_decay=-0.1"], "train.weight_decay"),
        (["algo=bond", "train.warmup_steps=-2"], "train.warmup_steps"),
        # AdamW multiplies the weights by 1 - lr * weight_decay each step: at 1 or more they flip sign and grow
        # until the loss is NaN, and the error then blamed train.lr
        (["algo=bond", "train.lr=0.01", "train.weight_decay=100"], "train.weight_decay"),
        (["algo=bond", "train.grad_clip=-1"], "train.grad_clip"),
        (["algo=bond", "oops"], "key=value"),
        # each of these ran into a ZeroDivisionError, an empty batch or a torch error after the task was built
        (["algo=bond", "train.batch_prompts=0"], "train.batch_prompts"),
        (["algo=bond", "train.eval_every=0"], "train.eval_every"),
        (["algo=bond", "train.eval_ref_samples=0"], "train.eval_ref_samples must be >= 1"),
        (["algo=bond", "train.save_samples=-1"], "train.save_samples"),
        (["algo=bond", "train.checkpoint_every=-1"], "train.checkpoint_every"),
        (["algo=bond", "train.checkpoint_minutes=-1"], "train.checkpoint_minutes"),
        (["algo=bond", "threads=-1"], "threads must be >= 0"),
        (["algo=bond", "seed=9223372036854775807"], "seed must lie between -4294967295 and 4294967295, got 9223"),
        # an integer beyond torch's 64 bits ran until it overflowed inside the loop, a traceback after the run
        # directory was written
        (["algo=best_of_n", "algo.n=100000000000000000000"], "algo.n=100000000000000000000 is out of range"),
        (["algo=reinforce", "algo.samples=100000000000000000000"], "algo.samples=100000000000000000000 is out of"),
        (["algo=bond", "task.seed=99999999999999999999"], "task.seed=99999999999999999999 is out of range"),
        (["algo=bond", "threads=2147483648"], "threads must be >= 0 (0: torch's default) and <= 4096, got 2147483648"),
        (["algo=bond", "train.lr=inf"], "train.lr must be a finite number"),
        (["algo=bond", "task.name=sentiment"], "task=NAME"),  # a section is chosen by its key, not renamed
        (["algo=bond", "task.vocab_size=40"], "task.vocab_size must lie in [2, 27]"),
        # a task without an oracle has no exact quantiles: a ValueError traceback after step 0's evaluation
        (["algo=bond", "task=sentiment", "model.name=tiny", "algo.quantiles=exact"], "algo.quantiles=exact needs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, needle):
    code, _, err = cli("train", *args, f"run_dir={tmp_path}/x")
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # rejected before any work


def test_presets_are_configs_of_registered_algorithms():
    cfg = load_config(["algo=vbon"])
    assert cfg.algo.name == "bond" and cfg.algo.beta == 1.0
    cfg = load_config(["algo=rloo", "algo.samples=8"])
    assert cfg.algo.name == "reinforce" and cfg.algo.baseline == "loo" and cfg.algo.samples == 8
    cfg = load_config(["algo=iterative_bond"])
    assert cfg.algo.anchor_period > 0
    with pytest.raises(ConfigError):
        load_config(["algo=rloo", "algo.name=bond"])


def test_a_preset_takes_the_tuned_defaults_of_its_algorithm_and_overrides_them(tmp_path, monkeypatch):
    """rlhf_zoo/configs/task/exact/reinforce.yaml tunes REINFORCE on the testbed, so a REINFORCE preset starts from it;
    what the preset sets itself comes after it (resolution order 3 then 4)."""
    import shutil

    from rlhf_zoo import config

    shutil.copytree(config.CONFIG_DIR, tmp_path / "configs")
    (tmp_path / "configs" / "algo" / "mine.yaml").write_text("name: reinforce\nbeta: 0.25\n")
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path / "configs")
    tuned = compose(["algo=reinforce"])
    assert (tuned.algo.beta, tuned.train.batch_prompts) == (0.5, 64)  # the tuned file, not the dataclass defaults
    cfg = compose(["algo=mine"])
    assert (cfg.algo.beta, cfg.train.batch_prompts) == (0.25, 64)
    assert compose(["algo=rloo"]).train.batch_prompts == 64


def test_quantiles_auto_resolves_to_exact_on_the_testbed():
    assert load_config(["algo=bond"]).algo.quantiles == "exact"
    assert load_config(["algo=bond", "algo.quantiles=mc"]).algo.quantiles == "mc"
    # a task without an oracle has no exact quantiles: Monte-Carlo ones
    assert compose(["algo=bond", "task=sentiment"]).algo.quantiles == "mc"


def test_the_default_run_dir_names_the_algorithm_as_given_the_task_and_the_seed():
    """Two seeds, or a preset and the algorithm it configures, must not share a run directory (the second run
    would refuse it, or resume the other)."""
    assert compose(["algo=bond", "seed=3"]).run_dir == "runs/bond-exact-s3"
    assert compose(["algo=rloo", "seed=1"]).run_dir == "runs/rloo-exact-s1"
    assert compose(["algo=bond", "seed=3", "run_dir=elsewhere"]).run_dir == "elsewhere"


def test_python_dash_m_entry_point(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_zoo",
            "train",
            "algo=jbond",
            f"run_dir={tmp_path}/j",
            "train.steps=3",
            "train.progress=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "j" / "summary.json").read_text())["algo"] == "jbond"


def test_unknown_tracker_is_rejected(tmp_path, cli):
    code, _, err = cli("train", "algo=bond", f"run_dir={tmp_path}/x", "train.log_with=mlflowz")
    assert code == 2 and "log_with" in err


def test_bench_help_names_every_built_in_suite(cli):
    """``rlhf-zoo bench --help`` listed exact|quick|lm|full only: ``demo`` (what ``make run`` runs, the
    README's first command) and ``gpu-check`` were missing from the help, though the command takes them."""
    from rlhf_zoo.bench.suites import SUITES

    code, out, _ = cli("bench", "--help")
    assert code == 0
    listed = out.split("suite=")[1].split()[0].split("|")
    assert listed == [*SUITES, "FILE.yaml"], listed


def test_the_documented_zero_values_are_accepted():
    """0 means "off" (or "torch's default", "no training") for these settings: accepted, not refused as < 1."""
    zeros = ["train.steps", "train.save_samples", "train.checkpoint_every", "train.checkpoint_minutes",
             "train.grad_clip", "train.warmup_steps", "train.weight_decay", "threads"]  # fmt: skip
    cfg = load_config(["algo=bond", *(f"{k}=0" for k in zeros)])
    assert [OmegaConf.select(cfg, k) for k in zeros] == [0] * len(zeros)


def test_a_command_s_output_file_that_is_a_directory_is_refused(tmp_path):
    from rlhf_zoo.config import check_writable_file
    from rlhf_zoo.errors import UserError

    with pytest.raises(UserError, match=f"profile: out={tmp_path} is a directory: name a JSON file"):
        check_writable_file(str(tmp_path), "profile")
    check_writable_file(str(tmp_path / "profile.json"), "profile")  # a new file in a writable folder


def test_a_home_path_is_checked_where_it_leads(tmp_path, monkeypatch):
    """``out=~/d`` and ``run_dir=~/f`` (quoted, or from a file: no shell expanded them) are checked as the folder and
    file they name under the home folder, not as a path under a folder named ``~`` that is not there."""
    from rlhf_zoo.config import check_writable_dir, check_writable_file
    from rlhf_zoo.errors import UserError

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="profile: out=~/d is a directory: name a JSON file"):
        check_writable_file("~/d", "profile")
    with pytest.raises(ConfigError, match="run_dir=~/f is a file, not a directory"):
        check_writable_dir("~/f", "run_dir")


def test_a_run_dir_under_the_home_folder_is_written_where_it_was_checked(tmp_path, monkeypatch, cli):
    """``run_dir=~/r`` (quoted, or in a YAML file: no shell expands it) was checked as ``$HOME/r`` but the run
    wrote to a folder named ``~`` in the current directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    code, out, err = cli("train", "algo=bond", "train.steps=0", "train.progress=false", "run_dir=~/r")
    assert code == 0, err
    assert (tmp_path / "home" / "r" / "summary.json").is_file()
    assert not (tmp_path / "cwd" / "~").exists()


@pytest.mark.parametrize(
    "command, options",
    [
        ("bench", "rlhf_zoo.bench.command:BenchOptions"),
        ("profile", "rlhf_zoo.profile:ProfileOptions"),
        ("prepare", "rlhf_zoo.prepare:PrepareOptions"),
        ("compare", "rlhf_zoo.compare:CompareOptions"),
        ("export", "rlhf_zoo.export:ExportOptions"),
    ],
)
def test_a_command_s_usage_names_every_option_it_takes(cli, command, options):
    """``rlhf-zoo bench --help`` left out records= (which the README documents), render= and progress=;
    ``rlhf-zoo profile --help`` left out warmup= and out=."""
    import dataclasses
    import importlib

    module, _, name = options.partition(":")
    code, out, _ = cli(command, "--help")
    assert code == 0
    fields = dataclasses.fields(getattr(importlib.import_module(module), name))
    missing = [f.name for f in fields if f"{f.name}=" not in out]
    assert missing == []


def test_train_fsdp_on_a_task_without_a_language_model_is_refused(tmp_path, cli):
    """docs/scaling.md refuses FSDP on the exact testbed; in one process ``train.fsdp=true`` was taken and
    ignored there (it was refused only once several processes had built the task)."""
    code, _, err = cli("train", "algo=bond", "task=exact", "train.fsdp=true", f"run_dir={tmp_path}/r")
    assert code == 2
    assert "train.fsdp=true shards a language-model policy; task=exact has none" in err
    assert not (tmp_path / "r").exists()
    assert load_config(["algo=bond", "task=sentiment", "train.fsdp=true", "model.name=tiny"]).train.fsdp is True
