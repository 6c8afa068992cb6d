"""HFSequenceReward's settings on tiny random models: label indices, refused values, the device, the dtype,
truncation, and classifiers whose tokenizer has no pad token."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlhf_zoo.errors import UserError

pytest.importorskip("transformers")

from rlhf_zoo.rewards.hf import HFSequenceReward, default_device  # noqa: E402
from tests.rewards.helpers import PROMPTS as ALL_PROMPTS  # noqa: E402
from tests.rewards.helpers import TEXTS as ALL_TEXTS  # noqa: E402
from tests.rewards.helpers import logits as _logits  # noqa: E402

TEXTS, PROMPTS = ALL_TEXTS[:6], ALL_PROMPTS[:6]


def _spread(path: Path) -> Path:
    """Redraw the weight matrices of a tiny model with a wide spread (std 0.3): the default 0.02 gives
    scores that differ between texts by about 1e-5, below any useful tolerance; these differ by about 1."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.rewards.conftest import _tiny_bert

    return _spread(_tiny_bert(tmp_path_factory.mktemp("wide_reg"), 1))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.rewards.conftest import _tiny_bert

    return _spread(_tiny_bert(tmp_path_factory.mktemp("wide_cls"), 3, {0: "NEG", 1: "NEU", 2: "POS"}))


def test_the_wide_models_score_texts_apart(regressor: Path, classifier: Path) -> None:
    """What the tests below rely on: the texts' scores differ by far more than the tolerance."""
    for z in (_logits(regressor, TEXTS)[:, 0], _logits(classifier, TEXTS)[:, 2] - _logits(classifier, TEXTS)[:, 0]):
        assert (z[:, None] - z[None, :]).abs().add(torch.eye(len(TEXTS))).min() > 1e-2


def test_cuda_is_the_default_device_when_there_is_one_and_a_device_given_wins(monkeypatch, regressor) -> None:
    """``device=None`` means cuda where it is available; ``device="cpu"`` stays on the CPU even then."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")
    r = HFSequenceReward(regressor, device="cpu")
    assert r.device == torch.device("cpu") and next(r.model.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")


def test_a_label_index_may_be_negative_or_written_as_text(classifier: Path) -> None:
    """``label=-1`` is the last of the 3 labels (index 2), as a Python index; ``"2"`` and ``"-1"`` (an index
    written in a YAML file or on the command line) are indices, not label names; -4 is out of range."""
    z = _logits(classifier, TEXTS)
    for label in (-1, "-1", "2"):
        r = HFSequenceReward(classifier, device="cpu", label=label)
        assert r.label == 2, label
        torch.testing.assert_close(r.score(PROMPTS, TEXTS), z[:, 2], atol=1e-5, rtol=1e-5)
    r = HFSequenceReward(classifier, device="cpu", label="0", negative_label=-2)
    assert (r.label, r.negative_label) == (0, 1)
    torch.testing.assert_close(r.score(PROMPTS, TEXTS), z[:, 0] - z[:, 1], atol=1e-5, rtol=1e-5)
    for label in (-4, "-4", "3"):
        with pytest.raises(UserError, match="out of range for a model with 3 labels"):
            HFSequenceReward(classifier, device="cpu", label=label)


def test_a_negative_label_without_a_label_is_refused(tiny_binary: Path) -> None:
    """On a two-label model the default score would silently replace it: refused instead."""
    with pytest.raises(UserError, match="negative_label needs label"):
        HFSequenceReward(tiny_binary, device="cpu", negative_label=1)


@pytest.mark.parametrize(("label", "negative_label"), [(1, 1), ("POS", 2), (-1, "2"), ("neu", "NEU")])
def test_a_label_scored_against_itself_is_refused(classifier: Path, label, negative_label) -> None:
    """``label`` and ``negative_label`` naming the same logit, by index or by name, made every score
    ``z[i] - z[i] = 0``: a constant reward that trained nothing, silently."""
    with pytest.raises(UserError, match="the same logit"):
        HFSequenceReward(classifier, device="cpu", label=label, negative_label=negative_label)


@pytest.mark.parametrize("option", [{"batch_size": 0}, {"max_length": 0}])
def test_a_batch_size_or_max_length_below_one_is_refused(regressor: Path, option) -> None:
    with pytest.raises(UserError, match=">= 1"):
        HFSequenceReward(regressor, device="cpu", **option)


@pytest.mark.parametrize("written", ["./nowhere", "~/nowhere"])
def test_a_relative_or_home_folder_that_is_not_there_is_named(tmp_path, monkeypatch, written) -> None:
    """``./x`` and ``~/x`` are folders, never hub ids: one that is not there is said so, not looked up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UserError, match=f"folder '{written}' does not exist"):
        HFSequenceReward(written, device="cpu")


def test_two_labels_that_are_not_positive_then_negative_take_the_default(tmp_path: Path) -> None:
    """Only label 0 ``pos…`` with label 1 ``neg…`` is refused; the usual NEGATIVE/POSITIVE order, and two labels
    that both start with ``pos``, score ``logit 1 - logit 0``."""
    from tests.rewards.conftest import _tiny_bert

    for names in ({0: "NEGATIVE", 1: "POSITIVE"}, {0: "positive", 1: "positive, strongly"}):
        path = _spread(_tiny_bert(tmp_path / names[0], 2, names))
        z = _logits(path, TEXTS)
        r = HFSequenceReward(path, device="cpu")
        assert (r.label, r.negative_label) == (1, 0)
        torch.testing.assert_close(r.score(PROMPTS, TEXTS), z[:, 1] - z[:, 0], atol=1e-5, rtol=1e-5)


def test_the_missing_head_lists_every_missing_weight_when_there_are_few(tmp_path: Path) -> None:
    """Two missing weights are both named, with no "..." that would say more are left out."""
    from transformers import BertModel

    from tests.rewards.conftest import _tiny_bert

    path = _tiny_bert(tmp_path / "base", 2)
    BertModel.from_pretrained(path).save_pretrained(path)
    with pytest.raises(UserError, match=r"\(classifier\.bias, classifier\.weight not in the checkpoint\)"):
        HFSequenceReward(path, device="cpu")


def test_a_model_saved_in_bfloat16_scores_in_float32_and_is_frozen(tmp_path: Path, regressor: Path) -> None:
    """The weights are loaded as float32 whatever dtype the checkpoint was saved in (transformers would keep
    bfloat16), and none of them takes gradients."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path / "bf16"
    AutoModelForSequenceClassification.from_pretrained(regressor).to(torch.bfloat16).save_pretrained(path)
    AutoTokenizer.from_pretrained(regressor).save_pretrained(path)
    r = HFSequenceReward(path, device="cpu")
    assert {p.dtype for p in r.model.parameters()} == {torch.float32}
    assert not any(p.requires_grad for p in r.model.parameters())
    torch.testing.assert_close(r.score(PROMPTS, TEXTS), _logits(path, TEXTS)[:, 0], atol=1e-5, rtol=1e-5)


def test_texts_are_cut_to_max_length_tokens_on_the_right(regressor: Path) -> None:
    """``max_length=5``: each text is read as its first 5 tokens ([CLS] and [SEP] included), the score of that
    text alone; longer texts score differently from their whole."""
    r = HFSequenceReward(regressor, device="cpu", max_length=5, batch_size=4)
    cut = _logits(regressor, TEXTS, truncation=True, max_length=5)[:, 0]
    whole = _logits(regressor, TEXTS)[:, 0]
    got = r.score(PROMPTS, TEXTS)
    torch.testing.assert_close(got, cut, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[3], whole[3], atol=1e-4)  # 11 words: it was cut


@pytest.mark.parametrize(("text", "special"), [("completion", 2), ("pair", 3)])
def test_a_max_length_that_leaves_no_room_for_text_is_refused(regressor: Path, text, special) -> None:
    """The tokenizer adds [CLS] and [SEP] (and a second [SEP] for a pair): ``max_length=2`` read those alone,
    the same score for every text, and ``max_length=1``, shorter than them, was silently not applied at all
    (the tokenizer cannot truncate below them): every text read whole. One more token reads some text."""
    for max_length in range(1, special + 1):
        with pytest.raises(UserError, match=f"max_length={max_length} leaves no room"):
            HFSequenceReward(regressor, device="cpu", max_length=max_length, text=text)
    scores = HFSequenceReward(regressor, device="cpu", max_length=special + 1, text=text).score(PROMPTS, TEXTS)
    assert scores.unique().numel() > 1  # a token of text each: they differ


def test_max_length_is_capped_by_the_tokenizers_limit(tmp_path: Path, regressor: Path) -> None:
    """A tokenizer whose ``model_max_length`` is 6 reads at most 6 tokens, whatever ``max_length`` asks."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path / "short"
    AutoModelForSequenceClassification.from_pretrained(regressor).save_pretrained(path)
    AutoTokenizer.from_pretrained(regressor, model_max_length=6).save_pretrained(path)
    r = HFSequenceReward(path, device="cpu", max_length=512)
    assert r.max_length == 6
    cut = _logits(path, TEXTS, truncation=True, max_length=6)[:, 0]
    torch.testing.assert_close(r.score(PROMPTS, TEXTS), cut, atol=1e-5, rtol=1e-5)


def test_max_length_is_capped_by_the_models_positions(regressor: Path) -> None:
    """The tiny BERT's tokenizer sets no ``model_max_length`` (as many a reward model's does not) and its model
    has 64 positions: a longer text, a prompt and its completion, failed mid-run ("The size of tensor a (82)
    must match the size of tensor b (64)"); it is read as its first 64 tokens, as a tokenizer's limit is."""
    r = HFSequenceReward(regressor, device="cpu", max_length=512)
    assert r.max_length == 64
    long = " ".join(["wonderful", "boring"] * 50)
    cut = _logits(regressor, [long], truncation=True, max_length=64)[:, 0]
    torch.testing.assert_close(r.score(["the film"], [long]), cut, atol=1e-5, rtol=1e-5)


def _no_pad_classifier(path: Path, eos: bool = True) -> Path:
    """A tiny Llama regressor whose tokenizer has no pad token (as GPT-2 style reward models), nor a
    ``pad_token_id`` in its config."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rlhf_zoo.policies.models import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.pad_token = None
    if not eos:
        tok.eos_token = None
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, num_labels=1, pad_token_id=None, initializer_range=0.3,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_a_classifier_without_a_pad_token_pads_with_eos(tmp_path: Path) -> None:
    """Texts of different lengths in one batch: padded with the eos token, and the model told so (it reads the
    last token that is not padding), so each score is that of the text alone."""
    path = _no_pad_classifier(tmp_path / "nopad")
    r = HFSequenceReward(path, device="cpu", batch_size=len(TEXTS))
    assert r.tokenizer.pad_token == r.tokenizer.eos_token == "</s>"
    assert r.model.config.pad_token_id == r.tokenizer.eos_token_id
    torch.testing.assert_close(r.score(PROMPTS, TEXTS), _logits(path, TEXTS)[:, 0], atol=1e-5, rtol=1e-5)


def test_a_tokenizer_with_neither_pad_nor_eos_is_refused(tmp_path: Path) -> None:
    path = _no_pad_classifier(tmp_path / "noeos", eos=False)
    with pytest.raises(UserError, match="neither a pad nor an eos token"):
        HFSequenceReward(path, device="cpu")


def test_prompts_and_completions_of_different_lengths_are_refused(regressor: Path) -> None:
    r = HFSequenceReward(regressor, device="cpu")
    with pytest.raises(ValueError, match="1 prompts for 2 completions"):
        r.score(["a"], ["good", "bad"])
