"""Fixtures for the reward and data tests: an isolated cache, tiny random BERT models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

WORDS = (
    "the a movie film was is not very good great wonderful bad awful terrible boring fun "
    "i it this and but love hate loved hated plot acting story ok fine so too ! . ,"
).split()


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not stall when other jobs share the CPUs)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache and no sdist override."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(cache))
    monkeypatch.delenv("RLHF_ZOO_HUTTO_SDIST", raising=False)
    return cache


def _tiny_bert(path: Path, num_labels: int, id2label: dict[int, str] | None = None) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = BertTokenizer(vocab=vocab)
    label2id = None if id2label is None else {v: k for k, v in id2label.items()}
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
        id2label=id2label, label2id=label2id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_regressor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT regressor (num_labels=1) with its tokenizer."""
    return _tiny_bert(tmp_path_factory.mktemp("tiny_reg"), 1)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 3-label BERT classifier (neg/neu/pos)."""
    return _tiny_bert(tmp_path_factory.mktemp("tiny_cls"), 3, {0: "NEG", 1: "NEU", 2: "POS"})


@pytest.fixture(scope="session")
def tiny_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-label BERT classifier."""
    return _tiny_bert(tmp_path_factory.mktemp("tiny_bin"), 2)
