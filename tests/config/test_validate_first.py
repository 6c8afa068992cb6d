"""Settings that can be checked without loading a model fail first, in one line (exit 2): an unusable
policy before the gold reward model is built, a hub id without a network within seconds."""

import os
import subprocess
import sys
import time

import pytest

from rlhf_zoo import cli


def test_a_missing_policy_path_fails_before_any_model_is_built(monkeypatch, tmp_path, capsys):
    import rlhf_zoo.rewards.minilm_build as build
    import rlhf_zoo.train as train  # imported before patching, so that nothing keeps the stand-in

    monkeypatch.setenv("RLHF_ZOO_CACHE", str(tmp_path / "cache"))  # no gold model built here
    monkeypatch.setattr(build, "build_minilm_sentiment", lambda *a, **k: pytest.fail("the gold model was built"))
    monkeypatch.setattr(train, "build_task", lambda *a, **k: pytest.fail("the task was built"))
    code = cli.main(["train", "algo=reinforce", "task=sentiment", "model.name=/no/such/model", f"run_dir={tmp_path}/r"])
    err = capsys.readouterr().err
    assert code == 2 and "model.name=/no/such/model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("setting", ["model.name", "task.gold=hf"])
def test_a_file_named_as_a_model_folder_is_said_to_be_a_file(tmp_path, capsys, setting):
    """``model.name=model.safetensors`` (or the config.json) said "no such directory" of a file that is there."""
    (tmp_path / "model.safetensors").write_bytes(b"")
    value = f"{setting}={tmp_path}/model.safetensors".replace("=hf=", "=hf:")
    code = cli.main(["train", "algo=reinforce", "task=sentiment", "model.name=tiny", value, f"run_dir={tmp_path}/r"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path}/model.safetensors is a file, not a model's folder: name the folder" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_directory_without_a_model_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = cli.main(["train", "algo=reinforce", "task=sentiment", f"model.name={tmp_path}/empty", "run_dir=x"])
    assert code == 2 and "config.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setting", ["model.name=someone/some-lm", "task.gold=hf:someone/some-rm", "task.prompts=someone/some-prompts"]
)
def test_a_hub_id_without_a_network_fails_within_seconds_before_anything_loads(tmp_path, setting):
    """A model, a reward model or a prompt dataset named by hub id, with no network: one line naming the
    setting, in seconds (transformers' own retries take about a minute; datasets' print ~11 warnings)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))  # nothing listens on port 9
    cmd = [sys.executable, "-m", "rlhf_zoo", "train", "algo=reinforce", "task=sentiment", "model.name=tiny", setting]
    t0 = time.monotonic()
    out = subprocess.run([*cmd, f"run_dir={tmp_path}/r"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and time.monotonic() - t0 < 30, out.stderr  # python start-up included
    lines = out.stderr.strip().splitlines()  # no retry warnings, no "Loading weights" bar before it
    assert len(lines) == 1 and setting.partition("=")[2] in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_a_hub_dataset_is_accepted_offline_only_when_a_copy_is_cached(monkeypatch, tmp_path, offline):
    import datasets.config
    import huggingface_hub
    import huggingface_hub.constants

    from rlhf_zoo.errors import UserError
    from rlhf_zoo.hub import check_hub_dataset

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub, "dataset_info", lambda *a, **k: pytest.fail("asked the hub"))
    monkeypatch.setenv(offline, "1")
    with pytest.raises(UserError, match=f"task.prompts=a/b is not in the local .* {offline} is set"):
        check_hub_dataset("a/b", "task.prompts=a/b")
    (tmp_path / "hub" / "datasets--a--b").mkdir(parents=True)  # downloaded by the hub client
    check_hub_dataset("a/b", "task.prompts=a/b")
    (tmp_path / "datasets" / "c___d").mkdir(parents=True)  # prepared by datasets
    check_hub_dataset("c/d", "task.prompts=c/d")


def test_a_cached_hub_model_is_accepted_offline_and_an_uncached_one_asks_the_hub_in_time(monkeypatch):
    """A model in the local cache needs no network (HF_HUB_OFFLINE=1 is fine); without it the hub is asked, with
    the check's timeout, unless an offline variable is *true* (HF_HUB_OFFLINE=0 means online)."""
    import huggingface_hub

    from rlhf_zoo.hub import check_hub_model

    asked = []
    monkeypatch.setattr(huggingface_hub, "model_info", lambda name, timeout=None: asked.append((name, timeout)))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda name, f: "/cache/config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_hub_model("a/cached")
    assert asked == []
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda name, f: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    check_hub_model("a/online", timeout=2.5)
    assert asked == [("a/online", 2.5)]


def test_quiet_transformers_puts_back_the_log_level_and_the_progress_bars():
    from transformers.utils import logging as hf_logging

    from rlhf_zoo.hub import quiet_transformers

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        with quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.ERROR and not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.INFO and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(level)
        if not bars:
            hf_logging.disable_progress_bar()


def test_missing_prompt_files_fail_before_any_model_loads(monkeypatch, tmp_path, capsys):
    import rlhf_zoo.train as train

    monkeypatch.setattr(train, "build_task", lambda *a, **k: pytest.fail("the task was built"))
    for setting in (f"task.prompts={tmp_path}/nowhere.jsonl", f"task.eval_prompts={tmp_path}/no/dir"):
        args = ["train", "algo=reinforce", "task=sentiment", "model.name=tiny", setting, f"run_dir={tmp_path}/r"]
        code = cli.main(args)
        err = capsys.readouterr().err
        assert code == 2 and f"{setting}: no such file or directory" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "arg",
    ["model.name=smollm2 135m", "model.name=someone/some-lm:v2", "task.gold=hf:my reward model"],
)
def test_a_name_that_is_no_hub_id_is_one_line(arg, tmp_path, capsys):
    """A mistyped name that is neither a directory nor a well-formed hub id (a space, a colon) is refused in
    one line naming the setting, not with huggingface_hub's validation traceback."""
    args = ["train", "algo=reinforce", "task=sentiment", "model.name=tiny", arg, f"run_dir={tmp_path}/r"]
    code = cli.main(args)
    err = capsys.readouterr().err
    value = arg.partition("=")[2]
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert value in err
    assert not (tmp_path / "r").exists()


def test_a_model_folder_without_a_tokenizer_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    """A folder with a config.json but no tokenizer files failed after the task was built, with
    "Couldn't instantiate the backend tokenizer from one of: ...": now one line, before anything loads."""
    import rlhf_zoo.train as train

    monkeypatch.setattr(train, "build_task", lambda *a, **k: pytest.fail("the task was built"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "llama"}')
    code = cli.main(["train", "algo=reinforce", "task=sentiment", f"model.name={tmp_path}/m", f"run_dir={tmp_path}/r"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no tokenizer" in err and "tokenizer.json" in err and f"{tmp_path}/m" in err


@pytest.mark.parametrize(
    ("again", "shown"),
    [
        ([], "already holds a run: pass resume=true to continue it"),
        # other settings without resume=true: the same line, not a resume's "differs" (the user asked for none)
        (["algo.beta=0.3"], "already holds a run: pass resume=true to continue it"),
        (["resume=true", "algo.beta=0.3"], "differs from this run's config (algo.beta: 0.5 → 0.3)"),
    ],
)
def test_a_run_directory_that_refuses_the_run_does_so_before_anything_is_built(
    monkeypatch, tmp_path, capsys, again, shown
):
    """A second run into a finished run's directory, or a resume with other settings, loaded the policy (a
    minute for a large model) before saying so."""
    import rlhf_zoo.train as train

    args = ["train", "algo=bond", "task=exact", "train.steps=1", "train.progress=false", f"run_dir={tmp_path}/r"]
    assert cli.main(args) == 0
    capsys.readouterr()
    monkeypatch.setattr(train, "build", lambda *a, **k: pytest.fail("the run was built"))
    code = cli.main([*args, *again])
    err = capsys.readouterr().err
    assert code == 2 and shown in err and len(err.strip().splitlines()) == 1, err
