"""HFSequenceReward: what loading it tells a user (the folder, the failure, the labels it offers), and how a
classifier whose config names no pad token reads a padded batch."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from rlhf_zoo.errors import MissingPackageError, UserError

pytest.importorskip("transformers")

from rlhf_zoo.rewards.hf import HFSequenceReward  # noqa: E402
from tests.rewards.helpers import PROMPTS, TEXTS  # noqa: E402
from tests.rewards.helpers import logits as _logits  # noqa: E402


def test_a_model_folder_under_home_written_with_a_tilde_loads(tmp_path, monkeypatch, tiny_regressor: Path) -> None:
    """``hf:~/classifier`` as a YAML file writes it: the loader is given the folder with ``~`` expanded (it would
    read ``~/classifier`` as a hub id), and the reward keeps the name as written."""
    import shutil

    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(tiny_regressor, tmp_path / "classifier")
    r = HFSequenceReward("~/classifier", device="cpu")
    assert r.name == "hf:~/classifier"
    torch.testing.assert_close(r.score(PROMPTS[:3], TEXTS[:3]), _logits(tiny_regressor, TEXTS[:3])[:, 0])


def test_a_model_that_does_not_load_is_one_line_naming_it(tmp_path: Path, monkeypatch) -> None:
    """A folder without a model, and a hub id that is not cached while offline (transformers' error runs over two
    lines, the second a link): the reward's error keeps the first line, so a run stops with one line naming it."""
    import huggingface_hub.constants

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as info:
        HFSequenceReward(tmp_path / "empty", device="cpu")
    msg = str(info.value)
    assert msg.startswith(f"could not load the reward model {str(tmp_path / 'empty')!r} (")
    assert "pass a local directory that holds the model and its tokenizer" in msg
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read when it was imported
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError) as info:
        HFSequenceReward("nobody-zoo/not-a-cached-model", device="cpu")
    msg = str(info.value)
    assert "\n" not in msg and "Check your internet connection" not in msg, msg
    assert msg.startswith("could not load the reward model 'nobody-zoo/not-a-cached-model' (")


def test_without_transformers_the_error_names_the_package(monkeypatch, tiny_regressor: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # `from transformers import ...` raises ImportError
    with pytest.raises(MissingPackageError, match="a Hugging Face reward model needs the package 'transformers'"):
        HFSequenceReward(tiny_regressor, device="cpu")


def test_an_unknown_label_name_lists_the_labels_the_model_has(tiny_classifier: Path) -> None:
    """A misspelt label is answered with the names to choose from (lower case: they are matched so)."""
    with pytest.raises(UserError, match=r"label 'happy' is not one of the model's labels \['neg', 'neu', 'pos'\]"):
        HFSequenceReward(tiny_classifier, device="cpu", label="happy")


def test_a_model_with_more_labels_and_no_label_chosen_lists_them(tiny_classifier: Path) -> None:
    with pytest.raises(UserError, match=r"has 3 labels \['NEG', 'NEU', 'POS'\]: pass label=\.\.\."):
        HFSequenceReward(tiny_classifier, device="cpu")


@pytest.mark.parametrize("key", ["proxy", "gold"])
def test_in_a_run_the_label_hint_names_the_rewards_own_setting(tiny_classifier: Path, key: str) -> None:
    """A gold reward of 3 labels was told to set ``task.proxy_options.label=..., or gold_options``."""
    from rlhf_zoo.tasks.sentiment import _reward

    with pytest.raises(UserError) as info:
        _reward(f"hf:{tiny_classifier}", {}, "cpu", build_if_missing=False, key=key)
    msg = str(info.value)
    assert msg.startswith(f"task.{key}: ") and msg.endswith(f"(in a run: task.{key}_options.label=...)"), msg


def test_the_lowest_negative_index_is_the_first_label(tiny_classifier: Path) -> None:
    """``label=-3`` on a 3-label model is label 0, as ``z[-3]`` is in Python (the range is -3 ... 2)."""
    r = HFSequenceReward(tiny_classifier, device="cpu", label=-3, negative_label="-1")
    assert (r.label, r.negative_label) == (0, 2)


def test_a_max_length_too_short_says_which_is_enough(tiny_regressor: Path) -> None:
    """BERT adds [CLS] and [SEP]: 3 tokens is the least that reads any text, and the error says so."""
    with pytest.raises(UserError, match=r"adds 2 special tokens to each; use max_length >= 3$"):
        HFSequenceReward(tiny_regressor, device="cpu", max_length=2)
    assert HFSequenceReward(tiny_regressor, device="cpu", max_length=3).max_length == 3


def test_a_name_given_is_the_rewards_name_and_the_repr_shows_the_score(tiny_classifier: Path) -> None:
    r = HFSequenceReward(tiny_classifier, device="cpu", label="POS", negative_label=0, name="judge")
    assert r.name == "judge"
    assert repr(r) == (
        f"HFSequenceReward({str(tiny_classifier)!r}, text='completion', label=2, negative_label=0, device='cpu')"
    )


def test_a_config_without_a_pad_id_is_given_the_tokenizers_own_pad_token(tmp_path: Path) -> None:
    """A Llama classifier whose tokenizer pads with ``<pad>`` (on the right) but whose config names no
    ``pad_token_id``: the model is told ``<pad>``'s id, so it reads each text's last real token and a short text
    scores in a batch as it does alone (told the eos id, which no text holds, it read the padding)."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rlhf_zoo.policies.models import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.padding_side = "right"
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, num_labels=1, pad_token_id=None, initializer_range=0.3,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path / "rightpad"
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    r = HFSequenceReward(path, device="cpu", batch_size=len(TEXTS))
    assert r.model.config.pad_token_id == tok.pad_token_id
    torch.testing.assert_close(r.score(PROMPTS, TEXTS), _logits(path, TEXTS)[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dropped", [4, 5])
def test_the_missing_weights_are_named_up_to_four_then_elided(tmp_path: Path, dropped: int) -> None:
    """A checkpoint that lacks its head and pooler (4 weights) names all four; one more missing weight is left
    out as ", ..." after the first four (in name order)."""
    from safetensors.torch import load_file, save_file

    from tests.rewards.conftest import _tiny_bert

    path = _tiny_bert(tmp_path / "cut", 2)
    weights = load_file(path / "model.safetensors")
    names = ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
    names += ["bert.embeddings.LayerNorm.bias"][: dropped - 4]
    save_file({k: v for k, v in weights.items() if k not in names}, path / "model.safetensors", {"format": "pt"})
    shown = re.escape(", ".join(sorted(names)[:4]) + (", ..." if dropped > 4 else ""))
    with pytest.raises(UserError, match=rf"has no trained classification head \({shown} not in the checkpoint\)"):
        HFSequenceReward(path, device="cpu")
