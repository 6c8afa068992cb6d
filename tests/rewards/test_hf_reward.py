"""HFSequenceReward on tiny randomly initialised BERT models saved to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards import build_reward, checked_score

pytest.importorskip("transformers")

from rlhf_zoo.rewards.hf import HFSequenceReward  # noqa: E402
from tests.rewards.helpers import PROMPTS, TEXTS  # noqa: E402
from tests.rewards.helpers import logits as _logits  # noqa: E402


def test_regressor_shape_and_value(tiny_regressor: Path) -> None:
    r = HFSequenceReward(tiny_regressor, device="cpu")
    s = checked_score(r, PROMPTS, TEXTS)
    assert s.shape == (len(TEXTS),) and s.dtype == torch.float32 and s.device.type == "cpu"
    torch.testing.assert_close(s, _logits(tiny_regressor, TEXTS)[:, 0], atol=1e-5, rtol=1e-5)
    assert r.name == f"hf:{tiny_regressor}"
    assert not r.model.training
    assert r.score([], []).shape == (0,)


def test_deterministic_and_batch_invariant(tiny_regressor: Path) -> None:
    a = HFSequenceReward(tiny_regressor, device="cpu", batch_size=2)
    b = HFSequenceReward(tiny_regressor, device="cpu", batch_size=8)
    sa = a.score(PROMPTS, TEXTS)
    assert torch.equal(sa, a.score(PROMPTS, TEXTS))
    torch.testing.assert_close(sa, b.score(PROMPTS, TEXTS), atol=1e-5, rtol=1e-5)
    perm = list(reversed(range(len(TEXTS))))
    sp = b.score([PROMPTS[i] for i in perm], [TEXTS[i] for i in perm])
    torch.testing.assert_close(sp, sa[perm], atol=1e-5, rtol=1e-5)


def test_text_modes(tiny_regressor: Path) -> None:
    comp = HFSequenceReward(tiny_regressor, device="cpu").score(PROMPTS, TEXTS)
    joined = HFSequenceReward(tiny_regressor, device="cpu", text="prompt+completion")
    expected = _logits(tiny_regressor, [p + t for p, t in zip(PROMPTS, TEXTS, strict=True)])[:, 0]
    torch.testing.assert_close(joined.score(PROMPTS, TEXTS), expected, atol=1e-5, rtol=1e-5)
    pair = HFSequenceReward(tiny_regressor, device="cpu", text="pair").score(PROMPTS, TEXTS)
    assert not torch.allclose(comp, pair)


def test_label_choice(tiny_classifier: Path, tiny_binary: Path) -> None:
    z = _logits(tiny_classifier, TEXTS)
    pos = HFSequenceReward(tiny_classifier, device="cpu", label="pos").score(PROMPTS, TEXTS)
    torch.testing.assert_close(pos, z[:, 2], atol=1e-5, rtol=1e-5)
    diff = HFSequenceReward(tiny_classifier, device="cpu", label=2, negative_label="NEG")
    torch.testing.assert_close(diff.score(PROMPTS, TEXTS), z[:, 2] - z[:, 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="label="):
        HFSequenceReward(tiny_classifier, device="cpu")
    with pytest.raises(UserError, match="not one of"):
        HFSequenceReward(tiny_classifier, device="cpu", label="happy")
    with pytest.raises(UserError, match="out of range"):
        HFSequenceReward(tiny_classifier, device="cpu", label=3)
    zb = _logits(tiny_binary, TEXTS)
    s = HFSequenceReward(tiny_binary, device="cpu").score(PROMPTS, TEXTS)
    torch.testing.assert_close(s, zb[:, 1] - zb[:, 0], atol=1e-5, rtol=1e-5)


def test_a_two_label_classifier_named_positive_first_needs_a_label(tmp_path: Path) -> None:
    from tests.rewards.conftest import _tiny_bert

    flipped = _tiny_bert(tmp_path / "flipped", 2, {0: "POSITIVE", 1: "NEGATIVE"})
    with pytest.raises(UserError, match="would reward the second"):
        HFSequenceReward(flipped, device="cpu")
    z = _logits(flipped, TEXTS)
    chosen = HFSequenceReward(flipped, device="cpu", label="positive", negative_label="negative")
    torch.testing.assert_close(chosen.score(PROMPTS, TEXTS), z[:, 0] - z[:, 1], atol=1e-5, rtol=1e-5)


def test_missing_model_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        HFSequenceReward(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="could not load"):
        HFSequenceReward(tmp_path / "empty")


def test_a_model_without_a_trained_head_is_refused(tmp_path: Path) -> None:
    """A checkpoint with no sequence-classification head (a base encoder, a causal LM such as zoo-lm)
    loaded with a randomly initialised head, so its reward was noise, silently (the load report is quiet)."""
    from transformers import BertModel

    from tests.rewards.conftest import _tiny_bert

    path = _tiny_bert(tmp_path / "base", 2)
    BertModel.from_pretrained(path).save_pretrained(path)  # the encoder alone, no classifier weights
    with pytest.raises(UserError, match=r"has no trained classification head \(classifier\.bias, classifier\.weight"):
        HFSequenceReward(path, device="cpu")


def test_registry_hf_spec(tiny_regressor: Path) -> None:
    r = build_reward(f"hf:{tiny_regressor}", device="cpu", batch_size=4)
    assert isinstance(r, HFSequenceReward) and r.batch_size == 4
    assert r.name == f"hf:{tiny_regressor}"


def test_pair_mode_reads_the_prompt_first_and_the_completion_second(tiny_regressor: Path) -> None:
    """text=pair: the tokenizer's (text, text_pair) is (prompt, completion), the order a reward model trained on
    (question, answer) pairs expects."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_regressor)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_regressor).eval()
    with torch.no_grad():
        pairs = list(zip(PROMPTS, TEXTS, strict=True))
        expected = torch.cat([model(**tok(p, t, return_tensors="pt")).logits[:, 0] for p, t in pairs])
        swapped = torch.cat([model(**tok(t, p, return_tensors="pt")).logits[:, 0] for p, t in pairs])
    assert not torch.allclose(expected, swapped, atol=1e-4)  # the order matters to this model
    got = HFSequenceReward(tiny_regressor, device="cpu", text="pair", batch_size=3).score(PROMPTS, TEXTS)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
