"""Where each bound of a setting lies (the last value accepted, the first refused) and which source of a setting
wins: a preset, the task's tuned defaults, an experiment file and the command line."""

import pytest
from omegaconf import OmegaConf

from rlhf_zoo.config import ConfigError, load_config


def _load(tmp_path, *args):
    return load_config(["algo=bond", *args, f"run_dir={tmp_path}/r"])


@pytest.mark.parametrize(
    ("key", "accepted", "refused", "message"),
    [
        # the documented range of a seed is |seed| < 2**32, both signs
        ("seed", 2**32 - 1, 2**32, "seed must lie between -4294967295 and 4294967295, got 4294967296"),
        ("seed", -(2**32 - 1), -(2**32), "seed must lie between -4294967295 and 4294967295, got -4294967296"),
        ("threads", 4096, 4097, "threads must be >= 0 (0: torch's default) and <= 4096, got 4097"),  # "at most 4096"
        ("train.lr", 1e-12, 0, "train.lr must be > 0"),  # a learning rate of 0 trains nothing
        ("train.eval_samples", 1, 0, "train.eval_samples must be >= 1"),  # each names its own key
        ("train.eval_prompts", 1, 0, "train.eval_prompts must be >= 1"),
        ("train.eval_ref_samples", 1, 0, "train.eval_ref_samples must be >= 1"),
    ],
)
def test_the_last_value_accepted_and_the_first_refused(tmp_path, key, accepted, refused, message):
    assert OmegaConf.select(_load(tmp_path, f"{key}={accepted}"), key) == accepted
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, f"{key}={refused}")
    assert str(e.value) == message


@pytest.mark.parametrize("value", [2**63, -(2**63)])
def test_an_integer_setting_may_reach_either_end_of_the_range_its_message_gives(tmp_path, value):
    """-(2**63 - 1) .. 2**63 - 1, ends included (torch's 64-bit integers); beyond them a run overflowed inside."""
    edge = value - 1 if value > 0 else value + 1
    assert _load(tmp_path, f"task.seed={edge}").task.seed == edge
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, f"task.seed={value}")
    assert str(e.value).startswith(f"task.seed={value} is out of range: an integer setting must lie between")


def test_a_caller_s_defaults_apply_only_where_the_arguments_say_nothing(tmp_path):
    """``load_config(args, defaults)``: the defaults come before the arguments, so an argument wins over them."""
    cfg = load_config(["algo=bond", "seed=2", f"run_dir={tmp_path}/r"], {"seed": "1", "train.steps": "5"})
    assert (cfg.seed, cfg.train.steps) == (2, 5)


@pytest.mark.parametrize(("text", "named"), [("name: dpo\n", "'dpo'"), ("beta: 0.5\n", "''")])
def test_a_preset_that_names_no_registered_algorithm_is_blamed_on_the_preset(tmp_path, monkeypatch, text, named):
    """A preset file (rlhf_zoo/configs/algo/NAME.yaml) whose ``name:`` is wrong or missing is the preset's fault,
    said so, not "unknown algorithm" of a name the user never typed."""
    import shutil

    from rlhf_zoo import config

    shutil.copytree(config.CONFIG_DIR, tmp_path / "configs")
    (tmp_path / "configs" / "algo" / "mine.yaml").write_text(text)
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path / "configs")
    with pytest.raises(ConfigError) as e:
        load_config(["algo=mine", f"run_dir={tmp_path}/r"])
    assert str(e.value) == f"preset rlhf_zoo/configs/algo/mine.yaml names unknown algorithm {named}"


@pytest.mark.parametrize("device", ["cpux", "cuda:0x", "cuda0", "autox"])
def test_a_device_with_more_after_a_known_name_is_refused(tmp_path, device):
    """device= names the whole device: ``cpux`` or ``cuda:0x`` is a typo, not cpu or cuda:0."""
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, f"device={device}")
    assert str(e.value) == f"device={device!r}: use auto, cpu, cuda or cuda:N"


def test_an_argument_that_is_not_key_value_is_a_config_error_as_documented(tmp_path):
    """load_config raises ConfigError for every bad input, a malformed argument too (callers catch that class)."""
    with pytest.raises(ConfigError, match="key=value"):
        _load(tmp_path, "oops")
