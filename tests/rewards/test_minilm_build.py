"""The gold-model build pipeline on a tiny random BERT and synthetic ratings (seconds, not minutes).

The real build (all-MiniLM-L6-v2 on 20k human ratings) runs in ``rlhf-zoo prepare``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rlhf_zoo.data.hutto import Record
from rlhf_zoo.errors import UserError
from rlhf_zoo.io import umask_mode

pytest.importorskip("transformers")

from rlhf_zoo.rewards.minilm import GOLD_NAME, is_built, load_minilm_sentiment  # noqa: E402
from rlhf_zoo.rewards.minilm_build import GoldTrainConfig, build_minilm_sentiment, pearson_r  # noqa: E402

POS, NEG, FILL = ["good", "great", "wonderful", "fun"], ["bad", "awful", "terrible", "boring"], [
    "the", "movie", "film", "was", "plot", "story", "acting", "and", "it",
]  # fmt: skip
SOURCES = ("movie_reviews", "tweets", "product_reviews", "nytimes")
SPLIT = dict(n_heldout=80, n_eval_prompts=20, min_prompt_words=4)
CFG = GoldTrainConfig(epochs=4, batch_size=16, lr=2e-3, max_length=16, warmup_frac=0.1, **SPLIT)


def records(n: int = 480) -> list[Record]:
    """Rating = (#positive - #negative words), so a model can learn it from words alone."""
    rng = random.Random(0)
    out = []
    for i in range(n):
        words = [rng.choice(FILL) for _ in range(rng.randint(6, 10))]
        k_pos, k_neg = rng.randint(0, 3), rng.randint(0, 3)
        words += rng.sample(POS, k_pos) + rng.sample(NEG, k_neg)
        rng.shuffle(words)
        out.append(Record(SOURCES[i % 4], str(i), float(k_pos - k_neg), " ".join(words)))
    return out


def _kw(tiny_regressor: Path) -> dict:
    return dict(records=records(), base=tiny_regressor, config=CFG, progress=False, device="cpu")


def test_pearson_r_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    y = y + x
    assert pearson_r(torch.tensor(x), torch.tensor(y)) == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_build_load_and_meta(tmp_path: Path, tiny_regressor: Path) -> None:
    out = tmp_path / "gold"
    path = build_minilm_sentiment(path=out, max_heldout=60, **_kw(tiny_regressor))
    assert path == out and is_built(out)
    assert {"config.json", "model.safetensors", "meta.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["gold"]  # no temporary folders left
    assert out.stat().st_mode & 0o777 == umask_mode(0o777)  # not mkdtemp's private 0700
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_heldout"] == 60 and meta["n_train"] > 300 and meta["epochs"] == 4
    assert meta["seed"] == 0 and meta["config"]["lr"] == CFG.lr and "torch" in meta["versions"]
    assert meta["pearson_r"] > 0.5  # the words determine the rating: the fine-tuning learns it
    reward = load_minilm_sentiment(path=out, build_if_missing=False, device="cpu")
    assert reward.name == GOLD_NAME and reward.meta == meta
    s = reward.score(["", ""], ["good great wonderful fun", "bad awful terrible boring"])
    assert s.shape == (2,) and s[0] > s[1]
    assert reward.model.config.problem_type == "regression"


def test_interrupted_build_leaves_nothing(tmp_path: Path, tiny_regressor: Path) -> None:
    def stop(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_minilm_sentiment(path=tmp_path / "gold", on_step=stop, **_kw(tiny_regressor))
    assert list(tmp_path.iterdir()) == []


def test_existing_model_is_kept_unless_forced(tmp_path: Path, tiny_regressor: Path) -> None:
    out = tmp_path / "gold"
    kw = _kw(tiny_regressor) | {"config": GoldTrainConfig(batch_size=64, max_length=8, **SPLIT)}
    build_minilm_sentiment(path=out, max_train=64, max_heldout=20, **kw)
    first = json.loads((out / "meta.json").read_text())["created"]
    steps: list[int] = []
    build_minilm_sentiment(path=out, on_step=steps.append, **kw)
    assert steps == []  # already built: returns at once
    build_minilm_sentiment(path=out, force=True, max_train=128, on_step=steps.append, **kw)
    assert steps == [1, 2]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_train"] == 128 and meta["created"] >= first
    assert [p.name for p in tmp_path.iterdir()] == ["gold"]


def test_guards(tmp_path: Path, tiny_regressor: Path) -> None:
    with pytest.raises(ValueError, match="explicit path"):
        build_minilm_sentiment(max_train=10, progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="refusing"):
        build_minilm_sentiment(path=foreign, force=True, **_kw(tiny_regressor))
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="rlhf-zoo prepare"):
        load_minilm_sentiment(build_if_missing=False)


def test_a_model_built_with_other_settings_is_not_taken_for_this_one(tmp_path: Path, tiny_regressor: Path) -> None:
    """A cache hit must be a model of the settings asked for: another config at the same place is refused in
    one line (the old model kept), and ``force=True`` rebuilds it with the new settings."""
    out = tmp_path / "gold"
    small = dict(max_train=64, max_heldout=20)
    first = GoldTrainConfig(batch_size=64, max_length=8, **SPLIT)
    kw = _kw(tiny_regressor)
    build_minilm_sentiment(path=out, **small, **(kw | {"config": first}))
    other = GoldTrainConfig(batch_size=32, max_length=8, **SPLIT)
    steps: list[int] = []
    with pytest.raises(UserError, match="batch_size"):
        build_minilm_sentiment(path=out, on_step=steps.append, **small, **(kw | {"config": other}))
    assert steps == [] and json.loads((out / "meta.json").read_text())["config"]["batch_size"] == 64
    build_minilm_sentiment(path=out, force=True, on_step=steps.append, **small, **(kw | {"config": other}))
    assert steps == [1, 2] and json.loads((out / "meta.json").read_text())["config"]["batch_size"] == 32


def test_two_workers_wanting_the_gold_model_build_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers (bench jobs=2) that both find the gold model missing: the second waits for the first's
    build and loads it, instead of building it again beside it."""
    import threading
    import time

    from rlhf_zoo.rewards import minilm

    builds: list[int] = []

    def slow_build(path=None, progress: bool = True) -> Path:
        builds.append(1)
        time.sleep(0.5)
        Path(path).mkdir(parents=True)
        (Path(path) / "meta.json").write_text("{}")
        return Path(path)

    monkeypatch.setattr(minilm.minilm_build, "build_minilm_sentiment", slow_build)
    monkeypatch.setattr(minilm, "MiniLMSentimentReward", lambda p, **kw: type("Loaded", (), {"path": p})())
    out = tmp_path / "gold"
    monkeypatch.setattr(minilm, "default_path", lambda: out)
    loaded: list[Path] = []
    workers = [
        threading.Thread(target=lambda: loaded.append(load_minilm_sentiment(progress=False).path)) for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert len(builds) == 1 and loaded == [out, out]


@pytest.mark.parametrize("build_if_missing", [True, False])
def test_a_given_gold_path_without_a_model_is_refused_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build_if_missing: bool
) -> None:
    """Only the default location is built on demand: a path the user gave (task.gold_options.path=...,
    perhaps mistyped) that holds no model is a one-line error naming it, not a 10-minute build there."""
    from rlhf_zoo.rewards import minilm

    builds: list[dict] = []
    monkeypatch.setattr(minilm.minilm_build, "build_minilm_sentiment", lambda **kw: builds.append(kw))
    missing = tmp_path / "no_such_gold"
    with pytest.raises(UserError, match="no_such_gold") as e:
        load_minilm_sentiment(build_if_missing, path=missing, progress=False)
    assert builds == [] and not missing.exists() and "\n" not in str(e.value)
