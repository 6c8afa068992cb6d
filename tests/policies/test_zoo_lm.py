"""``zoo-lm``: the build pipeline on a tiny shape and synthetic text (seconds), its cache, the
exclusion of the sentiment task's evaluation texts, and its selection by ``model.name``.

The real build (Hutto & Gilbert texts + the gensim wheel's prose, 5 M parameters) runs in
``rlhf-zoo prepare``; nothing here touches the network or the user's cache.
"""

from __future__ import annotations

import math
import os
import random
import re
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from rlhf_zoo.data.hutto import Record, prompt_prefix, prompt_texts, split_hutto
from rlhf_zoo.errors import UserError

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from rlhf_zoo.data import gensim_text  # noqa: E402
from rlhf_zoo.policies import zoo_lm  # noqa: E402
from rlhf_zoo.policies.zoo_lm import ZooLMConfig, build_zoo_lm, load_corpus, read_meta  # noqa: E402

WORDS = (
    "the a film movie story plot acting cast director script scene music ending hero villain "
    "is was feels seems becomes remains never always rarely often quite very too so "
    "funny sad warm cold clever dull bright dark honest silly tender brutal gentle loud "
    "and but or yet because while although when if then still even just only also"
).split()
SOURCES = ("movie_reviews", "tweets", "product_reviews", "nytimes")
# A tiny shape; the split arguments stay the defaults, so the held-out snippets are the task's own.
TINY = ZooLMConfig(
    vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=64,
    seq_len=32, batch_size=4, steps=3, warmup_steps=1, max_train_chars=20_000, n_samples=2, sample_tokens=4,
)  # fmt: skip


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + rng.choice([".", "!", ", really."])


def base_records() -> list[Record]:
    """4,100 unique synthetic texts: enough for the default split (500 eval prompts, 3,000 held out)."""
    rng = random.Random(0)
    counts = {"movie_reviews": 1500, "tweets": 900, "product_reviews": 800, "nytimes": 900}
    return [
        Record(src, str(i), float(rng.randint(-4, 4)), _sentence(rng, rng.randint(9, 16)))
        for src, n in counts.items()
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def data() -> dict:
    """Synthetic Hutto records and gensim files, each hiding copies of evaluation snippets in other
    sources and spellings (a tweet quoting one, a lower-cased tokenised news line, and an upper-case one)."""
    records = base_records()
    eval_snippets = [r.text for r in split_hutto(records).prompt_eval]
    quote = f"omg just read this: “{eval_snippets[0]}” so true"
    records.append(Record("tweets", "quote", 1.0, quote))
    assert [r.text for r in split_hutto(records).prompt_eval] == eval_snippets  # the quote moved nothing
    tokenised = re.sub(r"([.,!])", r" \1 ", eval_snippets[1].lower())
    rng = random.Random(1)
    news = [_sentence(rng, 30) for _ in range(40)] + [f"Critics wrote that {tokenised} and left it there."]
    wiki = [_sentence(rng, 40) + "[1]" for _ in range(5)] + [eval_snippets[2].upper()]
    files = {
        "lee_background.cor": "\n".join(news) + "\n",
        "lee.cor": "\n".join(_sentence(rng, 20) for _ in range(5)) + "\n",
        "para2para_text1.txt": "\n".join(wiki) + "\n",
        "para2para_text2.txt": _sentence(rng, 50) + "\n",
    }
    return {"records": records, "gensim": files, "eval_snippets": eval_snippets}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(cache))
    monkeypatch.delenv("RLHF_ZOO_HUTTO_SDIST", raising=False)
    monkeypatch.delenv(gensim_text.ENV_VAR, raising=False)
    return cache


def _build(data: dict, path: Path, config: ZooLMConfig = TINY, **kw) -> Path:
    return build_zoo_lm(
        path=path, config=config, records=data["records"], gensim_files=data["gensim"], progress=False, **kw
    )


def _norm(text: str) -> str:
    """An independent normalisation: lower case, every run of non-alphanumerics one space."""
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split()) + " "


def test_build_loads_with_auto_classes_and_records_meta(data: dict, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    umask = os.umask(0o027)  # a cache shared with a group: every file readable by it, as new files are
    try:
        path = _build(data, tmp_path / "lm")
    finally:
        os.umask(umask)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in path.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "meta.json"} <= modes.keys()
    assert set(modes.values()) == {0o666 & ~0o027}, modes
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model, LlamaForCausalLM)
    vocab = model.config.vocab_size
    assert vocab == len(tok) == TINY.vocab_size  # the synthetic text has merges enough to fill it
    ids = {"pad": tok.pad_token_id, "bos": tok.bos_token_id, "eos": tok.eos_token_id}
    assert ids == dict(zip(["pad", "bos", "eos"], tok.convert_tokens_to_ids(list(zoo_lm.SPECIALS)), strict=True))
    assert ids == {"pad": 0, "bos": 1, "eos": 2}  # the module docstring's ids
    assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == tuple(ids.values())
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert tok.padding_side == "left"
    for text in ["The film was warm, and the ending honest.", "Café – naïve 😀 <b>&amp;</b>\ttabs", "x"]:
        enc = tok(text)["input_ids"]
        assert enc[0] == tok.bos_token_id and all(0 <= i < vocab for i in enc)
        assert tok.decode(enc, skip_special_tokens=True) == text  # byte-level: every text round-trips
    meta = read_meta(path)
    assert meta["special_tokens"] == ids and meta["vocab_size"] == vocab
    assert math.isfinite(meta["heldout_perplexity"]) and 1.0 < meta["heldout_perplexity"] < 2 * vocab
    assert math.isfinite(meta["sentiment_eval_perplexity"]) and meta["sentiment_eval_perplexity"] > 1.0
    sources = {s["source"] for s in meta["sources"]}
    assert {"hutto/movie_reviews", "hutto/tweets", "gensim/lee_background.cor"} <= sources
    assert meta["config"]["steps"] == TINY.steps and meta["steps"] == TINY.steps
    assert meta["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert {"text", "tokenizer", "train", "evaluate", "total"} <= set(meta["seconds"])
    assert {"torch", "transformers", "tokenizers"} <= set(meta["versions"])
    assert len(meta["samples"]) == TINY.n_samples and all(len(s) == 2 for s in meta["samples"])
    for (prompt, continuation), snippet in zip(meta["samples"], data["eval_snippets"], strict=False):
        assert prompt == prompt_prefix(snippet, TINY.prompt_words) and not continuation.startswith(prompt)


def test_meta_figures_are_those_of_the_saved_model_on_the_held_out_and_evaluation_texts(data: dict, tmp_path: Path):
    """``meta.json``'s perplexities and token counts, recomputed from the saved model and tokenizer on the
    corpus's held-out documents and the sentiment task's evaluation snippets (not the training text)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # a seed other than 0 (every default seed); more vocabulary than the text's merges fill
    config = ZooLMConfig(**{**TINY.__dict__, "seed": 1, "vocab_size": 4000})
    lee = data["gensim"]["lee.cor"]
    files = {**data["gensim"], "lee.cor": lee + lee.splitlines()[0].upper() + "\n"}  # a repeated line
    path = build_zoo_lm(
        path=tmp_path / "lm", config=config, records=data["records"], gensim_files=files, progress=False
    )
    meta, tok = read_meta(path), AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert meta["vocab_size"] == len(tok) == model.config.vocab_size < config.vocab_size
    corpus, eval_snippets = load_corpus(config, data["records"], files)
    train, val = [d.text for d in corpus.train], [d.text for d in corpus.val]
    val_blocks = zoo_lm.pack(tok, val, TINY.seq_len)
    assert meta["heldout_perplexity"] == pytest.approx(zoo_lm.perplexity(model, val_blocks, tok.pad_token_id), abs=2e-3)
    eval_ppl = zoo_lm.snippet_perplexity(model, tok, eval_snippets)
    assert meta["sentiment_eval_perplexity"] == pytest.approx(eval_ppl, abs=2e-3)
    tokens = {
        part: sum(len(ids) + 1 for ids in tok(texts)["input_ids"]) for part, texts in (("train", train), ("val", val))
    }
    assert meta["corpus"]["train_tokens"] == tokens["train"] and meta["corpus"]["val_tokens"] == tokens["val"]
    # trained on the training blocks: their number is the training tokens' in blocks of seq_len, the last padded
    assert meta["tokens_seen"] == config.steps * config.batch_size * config.seq_len
    train_block_tokens = math.ceil(tokens["train"] / config.seq_len) * config.seq_len
    assert meta["epochs"] == round(meta["tokens_seen"] / train_block_tokens, 3) != 0
    assert (meta["corpus"]["train_docs"], meta["corpus"]["val_docs"]) == (len(train), len(val))
    assert meta["corpus"]["train_chars"] == len("".join(train))
    assert meta["corpus"]["duplicates_dropped"] == corpus.duplicates >= 1
    assert meta["corpus"]["excluded_eval"] == corpus.excluded
    # one row per source, of that source's own figures, attributed to its own origin
    rows = {s["source"]: s for s in meta["sources"]}
    assert len(rows) == len(meta["sources"]) and rows.keys() == corpus.sizes().keys()
    for source, row in rows.items():
        assert {k: row[k] for k in corpus.sizes()[source]} == corpus.sizes()[source], source
        assert row["excluded_eval"] == corpus.excluded.get(source, 0), source
        origin = source.split("/")[0]
        assert origin in row["from"].lower() and ("what" in row) == (origin == "gensim"), source
    assert sum(row["excluded_eval"] for row in rows.values()) == sum(corpus.excluded.values()) > 0
    # the samples are the saved model's continuations of the first snippets' prompts, at the recorded seed
    prompts = [prompt_prefix(t, config.prompt_words) for t in eval_snippets[: config.n_samples]]
    assert meta["samples"] == zoo_lm.sample_continuations(model, tok, prompts, config.sample_tokens, config.seed)
    assert meta["sample_settings"].endswith(f"seed {config.seed}")


def test_a_build_without_held_out_text_is_refused(data: dict, tmp_path: Path) -> None:
    """No held-out document would report a perplexity of exp(0) = 1 over no tokens: refused instead."""
    with pytest.raises(UserError, match="no training or held-out text"):
        _build(data, tmp_path / "lm", config=ZooLMConfig(**{**TINY.__dict__, "val_fraction": 1e-12}))
    assert not (tmp_path / "lm").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_size": 30, "num_heads": 4}, "multiple of num_heads"),
        ({"seq_len": 65, "max_positions": 64}, "exceeds max_positions"),
        ({"vocab_size": 259}, "vocab_size must exceed"),
        ({"sources": ()}, "non-empty subset"),
    ],
)
def test_a_shape_that_cannot_be_built_is_refused(change: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ZooLMConfig(**change)


def test_every_setting_gets_its_own_folder_and_fingerprints_tell_documents_apart() -> None:
    ZooLMConfig(seq_len=64, max_positions=64)  # the largest block that fits is allowed
    other = {"sources": ("hutto",), "hidden_size": 64, "num_heads": 4}  # each still a valid shape
    for name, value in TINY.__dict__.items():
        changed = other[name] if name in other else value + 1
        assert changed != value and ZooLMConfig(**{**TINY.__dict__, name: changed}).tag() != TINY.tag(), name
    assert zoo_lm.corpus_sha256(["ab", "c"]) != zoo_lm.corpus_sha256(["a", "bc"])
    assert zoo_lm.zoo_lm_path(TINY).name == TINY.tag() != ZooLMConfig().tag() == zoo_lm.zoo_lm_path().name
    assert zoo_lm.zoo_lm_path(TINY).parent == zoo_lm.zoo_lm_path().parent


def test_second_build_is_a_cache_hit(data: dict, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    steps: list[int] = []
    (tmp_path / "lm").mkdir()  # an empty folder is no obstacle
    path = _build(data, tmp_path / "lm", on_step=steps.append)
    assert steps == [1, 2, 3]
    stamp = (path / "meta.json").stat().st_mtime_ns
    assert _build(data, tmp_path / "lm", on_step=steps.append) == path
    assert steps == [1, 2, 3] and (path / "meta.json").stat().st_mtime_ns == stamp
    weights = load_file(path / "model.safetensors")
    torch.manual_seed(12345)  # the caller's random state plays no part: the build is a function of its config
    _build(data, tmp_path / "lm", on_step=steps.append, force=True)
    assert steps == [1, 2, 3] * 2
    again = load_file(path / "model.safetensors")
    assert again.keys() == weights.keys() and all(torch.equal(again[k], weights[k]) for k in weights)


def test_interrupted_build_leaves_nothing(data: dict, tmp_path: Path) -> None:
    def stop(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _build(data, tmp_path / "lm", on_step=stop)
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []  # no model, no temporary folder


def test_eval_texts_never_reach_the_training_text(data: dict, tmp_path: Path) -> None:
    """No evaluation prompt of ``task=sentiment`` (its own ``prompt_texts``) nor any evaluation
    snippet appears, in any casing or tokenisation, in the text the model and tokenizer train on."""
    full = ZooLMConfig(**{**TINY.__dict__, "max_train_chars": 0})  # all of the training text
    corpus, eval_snippets = load_corpus(full, data["records"], data["gensim"])
    assert eval_snippets == data["eval_snippets"]
    task_prompts = prompt_texts("eval", n_words=6, records=data["records"])  # what task=sentiment evaluates on
    assert len(task_prompts) == 500
    text = "".join(_norm(d.text) for d in corpus.train + corpus.val)
    leaked = [p for p in task_prompts + eval_snippets if _norm(p) in text]
    assert not leaked, f"{len(leaked)} eval texts in the training text, e.g. {leaked[:2]}"
    # the hidden copies were found in every source they were put in
    assert corpus.excluded.get("hutto/tweets", 0) >= 1
    assert corpus.excluded.get("gensim/lee_background.cor", 0) >= 1
    assert corpus.excluded.get("gensim/para2para_text1.txt", 0) >= 1
    assert corpus.excluded.get("hutto/movie_reviews", 0) >= 500
    # the built model trained on exactly this text
    meta = read_meta(_build(data, tmp_path / "lm", config=full))
    assert meta["corpus"]["train_sha256"] == zoo_lm.corpus_sha256([d.text for d in corpus.train])


def test_model_name_resolves_through_the_policy_path(data: dict) -> None:
    """``model.name=zoo-lm`` loads the cached model via ``load_model_and_tokenizer`` into an HFPolicy."""
    pytest.importorskip("peft")
    from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy
    from rlhf_zoo.policies.models import ZOO_LM, load_model_and_tokenizer

    with pytest.raises(UserError, match="rlhf-zoo prepare"):
        zoo_lm.ensure_zoo_lm(build_if_missing=False)
    path = _build(data, zoo_lm.zoo_lm_path())  # a tiny model where the default one lives
    model, tok = load_model_and_tokenizer(ZOO_LM)
    assert model.config.vocab_size == len(tok) == read_meta(path)["vocab_size"]
    for finetune in ("lora", "full"):
        pol = build_hf_policy(HFPolicyConfig(name=ZOO_LM, finetune=finetune, max_new_tokens=4), seed=0)
        r = pol.sample(["The film was", "A quiet story"], 2, generator=torch.Generator().manual_seed(0))
        assert r.completion_ids.shape[0] == 4
        with torch.no_grad():
            lp = pol.logprobs(r)
        assert float(((lp - r.sample_logp) * r.response_mask).abs().max()) < 1e-4


def test_prompts_are_checked_against_the_built_model_before_it_loads(data: dict, tmp_path, monkeypatch) -> None:
    """The early prompt-length check reads zoo-lm's tokenizer and positions from its build in the cache
    (None before the build), not from a folder named ``zoo-lm`` in the working directory."""
    from rlhf_zoo.policies.models import ZOO_LM, tokenizer_and_context

    monkeypatch.chdir(tmp_path)
    assert tokenizer_and_context(ZOO_LM) is None  # not built: checked after the build
    path = _build(data, zoo_lm.zoo_lm_path())
    found = tokenizer_and_context(ZOO_LM)
    assert found is not None and found[1] == TINY.max_positions
    assert len(found[0]) == read_meta(path)["vocab_size"]  # the built tokenizer, not another model's


def test_custom_text_needs_an_explicit_path(data: dict) -> None:
    with pytest.raises(ValueError, match="explicit path"):
        build_zoo_lm(config=TINY, records=data["records"], progress=False)
    with pytest.raises(UserError, match="subset"):
        ZooLMConfig(sources=("hutto", "wikipedia"))


def _fake_wheel(path: Path, lee: str = "A \xa33,000 tracker.\n", skip: str = "") -> Path:
    files = {
        "lee_background.cor": "First article.\n\nSecond  article.\n",
        "lee.cor": lee.encode("latin-1"),
        "para2para_text1.txt": "New York is a state.[1] It is big.[23]\n",
        "para2para_text2.txt": "Berlin is a city.\n",
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            if name != skip:
                zf.writestr(gensim_text.DATA_DIR + name, text)
        zf.writestr("gensim/__init__.py", "")
    return path


def test_gensim_texts_from_a_wheel_then_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path / "gensim-4.4.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    monkeypatch.setenv(gensim_text.ENV_VAR, str(tmp_path))  # a folder holding the wheel
    files = gensim_text.load_gensim_texts()
    docs = gensim_text.documents(files)
    assert docs["lee_background.cor"] == ["First article.", "Second article."]
    assert docs["lee.cor"] == ["A £3,000 tracker."]  # Latin-1 decoded
    assert docs["para2para_text1.txt"] == ["New York is a state. It is big."]  # footnote marks dropped
    wheel.unlink()
    monkeypatch.delenv(gensim_text.ENV_VAR)
    assert gensim_text.load_gensim_texts() == files  # read from the cache, no download
    monkeypatch.setenv(gensim_text.ENV_VAR, str(_fake_wheel(tmp_path / wheel.name, lee="Other news.\n")))
    assert gensim_text.documents(gensim_text.load_gensim_texts(refresh=True))["lee.cor"] == ["Other news."]
    assert gensim_text.documents(gensim_text.load_gensim_texts())["lee.cor"] == ["Other news."]  # re-cached


def test_a_wheel_without_every_text_is_refused(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "gensim-4.4.0-cp311-cp311-manylinux_2_28_x86_64.whl", skip="lee.cor")
    with pytest.raises(UserError, match=r"lacks lee\.cor"):
        gensim_text.read_wheel_texts(wheel)


def test_gensim_download_failure_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(cmd, **kw):
        assert gensim_text.REQUIREMENT in cmd and "--no-deps" in cmd
        stderr = "WARNING: pip is configured with a proxy\nERROR: No matching distribution found for gensim==4.4.0\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(gensim_text.subprocess, "run", offline)
    with pytest.raises(
        UserError, match=r"could not download gensim==4\.4\.0.*No matching distribution.*RLHF_ZOO_GENSIM"
    ):
        gensim_text.load_gensim_texts()


def test_a_model_built_with_other_settings_is_not_taken_for_this_one(data: dict, tmp_path: Path) -> None:
    """At an explicit path, a model of another config is not returned as if it were this one's."""
    path = _build(data, tmp_path / "lm")
    other = ZooLMConfig(**{**TINY.__dict__, "lr": TINY.lr / 2})
    steps: list[int] = []
    with pytest.raises(UserError, match="lr"):
        _build(data, tmp_path / "lm", config=other, on_step=steps.append)
    assert steps == [] and read_meta(path)["config"]["lr"] == TINY.lr
    _build(data, tmp_path / "lm", config=other, on_step=steps.append, force=True)
    assert steps == [1, 2, 3] and read_meta(path)["config"]["lr"] == other.lr
    assert _build(data, tmp_path / "lm", config=other) == path  # the same settings: a cache hit


def test_an_eval_snippet_with_an_html_entity_is_kept_out() -> None:
    """The Hutto texts carry HTML entities (``Lilo &amp; Stitch``; 22 movie-review snippets do) and enter the
    training text unescaped: such an evaluation snippet is still found, whichever spelling it comes in."""
    from rlhf_zoo.data.lm_corpus import Doc, EvalGuard, build_corpus, hutto_docs

    snippets = ["Makes S&amp;M seem very romantic, and Gyllenhaal is a delight.", "Lilo &amp; Stitch is a warm film."]
    records = [Record("movie_reviews", str(i), 1.0, t) for i, t in enumerate(snippets)]
    other = [Doc("gensim/lee.cor", "An unrelated line of news."), Doc("hutto/tweets", "Lilo & Stitch is a warm film!!")]
    corpus = build_corpus(hutto_docs(records) + other, EvalGuard(snippets, 6), val_fraction=0.5)
    assert [d.text for d in corpus.train + corpus.val] == ["An unrelated line of news."]
    assert corpus.excluded == {"hutto/movie_reviews": 2, "hutto/tweets": 1}


def test_two_workers_wanting_zoo_lm_build_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers (bench jobs=2) that both find zoo-lm missing: the second waits for the first's build
    and uses it, instead of building it again beside it and swapping its folder."""
    import threading
    import time

    builds: list[int] = []

    def slow_build(progress: bool = True) -> Path:
        builds.append(1)
        time.sleep(0.5)  # long enough for the other worker to arrive while this one builds
        path = zoo_lm.zoo_lm_path()
        path.mkdir(parents=True)
        (path / zoo_lm.META_FILE).write_text("{}")
        return path

    monkeypatch.setattr(zoo_lm, "build_zoo_lm", slow_build)
    found: list[Path] = []
    workers = [threading.Thread(target=lambda: found.append(zoo_lm.ensure_zoo_lm(progress=False))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert len(builds) == 1 and found == [zoo_lm.zoo_lm_path()] * 2


def test_the_corpus_follows_the_config_s_sources_split_seed_prompt_words_and_character_cap(data: dict) -> None:
    """``load_corpus`` reads each setting from the config: the evaluation snippets are those of ``split_seed``
    (not of ``seed``), ``n_eval_prompts`` and ``min_prompt_words`` (and ``n_heldout`` must fit the records), only
    the chosen sources give documents, the guard keeps out the first ``prompt_words`` words of each snippet, and
    ``max_train_chars`` caps the training text."""
    from rlhf_zoo.data.lm_corpus import norm_words

    base = {**TINY.__dict__, "max_train_chars": 0}
    split = {"seed": 1, "n_eval_prompts": 300, "min_prompt_words": 10}  # none the default
    config = ZooLMConfig(**{**base, "split_seed": split["seed"], **{k: v for k, v in split.items() if k != "seed"}})
    _, snippets = load_corpus(config, data["records"], data["gensim"])
    assert snippets == [r.text for r in split_hutto(data["records"], **split).prompt_eval]
    for name in split:  # each of the three decides the snippets: left at its default, they differ
        default = getattr(ZooLMConfig(), "split_seed" if name == "seed" else name)
        assert [r.text for r in split_hutto(data["records"], **{**split, name: default}).prompt_eval] != snippets, name
    with pytest.raises(ValueError, match="for 4000 held-out ones"):  # n_heldout only has to fit the records
        load_corpus(ZooLMConfig(**{**base, "n_heldout": 4000}), data["records"], data["gensim"])
    for only in ("hutto", "gensim"):
        part, _ = load_corpus(ZooLMConfig(**{**base, "sources": (only,)}), data["records"], data["gensim"])
        assert part.train and {d.source.split("/")[0] for d in part.train + part.val} == {only}
    # a news line quoting only the first 3 words of an evaluation snippet: an evaluation prompt at prompt_words=3
    three = " ".join(norm_words(data["eval_snippets"][3])[:3])
    files = {**data["gensim"], "lee.cor": f"Reviewers said {three} nothing more.\nAn unrelated line.\n"}
    for words, dropped in ((3, True), (TINY.prompt_words, False)):
        part, _ = load_corpus(ZooLMConfig(**{**base, "prompt_words": words}), data["records"], files)
        texts = {d.text for d in part.train + part.val}
        assert (f"Reviewers said {three} nothing more." not in texts) == dropped, words
        assert "An unrelated line." in texts
    full, _ = load_corpus(ZooLMConfig(**base), data["records"], data["gensim"])
    capped, _ = load_corpus(ZooLMConfig(**{**base, "max_train_chars": 5000}), data["records"], data["gensim"])
    sizes = [len(d.text) for d in capped.train]
    assert sum(sizes) >= 5000 > sum(sizes[:-1]) and capped.train == full.train[: len(sizes)]


def test_a_path_that_holds_something_else_is_never_built_over(data: dict, tmp_path: Path) -> None:
    """A non-empty folder without ``meta.json`` (or a file) at the path is refused before any work, and kept."""
    folder, file = tmp_path / "lm", tmp_path / "lm.txt"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    file.write_text("also mine")
    for path in (folder, file):
        with pytest.raises(UserError, match="holds no zoo-lm model"):
            _build(data, path)
    assert (folder / "notes.txt").read_text() == "mine" and file.read_text() == "also mine"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_folder_of_the_extracted_texts_is_read_as_they_are_encoded(tmp_path: Path) -> None:
    """``$RLHF_ZOO_GENSIM_WHEEL`` may name a folder of the extracted ``test_data`` files (no wheel in it): each is
    found wherever it lies below, and read as UTF-8, Latin-1 only where it is not UTF-8 (``lee.cor``'s one ``£``):
    UTF-8 prose read as Latin-1 would turn every non-ASCII letter of Wikipedia's into two wrong characters."""
    data = tmp_path / "extracted" / "gensim" / "test" / "test_data"
    data.mkdir(parents=True)
    texts = {
        "lee_background.cor": "Canberra's news.\n",
        "lee.cor": "A £3,000 tracker.\n",
        "para2para_text1.txt": "Zürich – or São Paulo – is not New York.\n",
        "para2para_text2.txt": "Berlin, Straße des 17. Juni.\n",
    }
    for name, text in texts.items():
        (data / name).write_bytes(text.encode("latin-1" if name == "lee.cor" else "utf-8"))
    assert not list(tmp_path.rglob("*.whl"))
    assert gensim_text.read_wheel_texts(tmp_path / "extracted") == texts


def test_the_download_command_is_the_documented_one_for_the_one_pinned_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's docstring names the command that fetches the wheel (one fixed file whatever the machine:
    cp311, manylinux_2_28 x86_64); the command run and the one the error tells the user to run are that command,
    into a folder (``-d``)."""
    import shlex

    doc = " ".join(gensim_text.__doc__.split())
    documented = re.search(r"``python (-m pip download .*?)``", doc).group(1)
    said = shlex.split(gensim_text.download_command("/some/dir"))
    assert said[:1] == ["python"] and said[-2:] == ["-d", "/some/dir"]
    # the documented flags and values in their order (pip's own version notice silenced besides)
    assert [a for a in said[1:-2] if a != "--disable-pip-version-check"] == shlex.split(documented)
    flags = said[1:-2]
    ran = []

    def offline(cmd, **kw):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: offline\n")

    monkeypatch.setattr(gensim_text.subprocess, "run", offline)
    with pytest.raises(UserError) as e:
        gensim_text.load_gensim_texts()
    assert gensim_text.download_command() in str(e.value)
    assert ran[0][1:-2] == flags and ran[0][-2] == "-d"  # what runs is the command the user is told to run


def test_only_the_four_prose_files_become_documents_whatever_else_the_texts_hold() -> None:
    """The folder's other files are left out on purpose (the module docstring): ``pang_lee_polarity.cor`` holds the
    sentiment task's own Rotten Tomatoes snippets, lower-cased and tokenised, the texts its evaluation prompts come
    from. Texts that hold it still give documents of the four prose files only, each (even an empty one) under its
    own name."""
    from rlhf_zoo.data.lm_corpus import gensim_docs

    files = {
        "lee_background.cor": "An article.\n",
        "pang_lee_polarity.cor": "the film 's a delight .\nboring .\n",
        "para2para_text2.txt": "Berlin is a city.\n",
    }
    docs = gensim_text.documents(files)
    assert docs == {
        "lee_background.cor": ["An article."], "lee.cor": [], "para2para_text1.txt": [],
        "para2para_text2.txt": ["Berlin is a city."],
    }  # fmt: skip
    assert {d.source for d in gensim_docs(files)} == {"gensim/lee_background.cor", "gensim/para2para_text2.txt"}


def test_a_folder_without_meta_json_is_not_a_built_model() -> None:
    """A folder with ``meta.json`` is complete (the module docstring); an empty or half-written one at the default
    place (a user's mkdir, files without the meta) is not taken for zoo-lm: asked not to build, it says to prepare."""
    path = zoo_lm.zoo_lm_path()
    path.mkdir(parents=True)
    assert not zoo_lm.is_built(path)
    (path / "config.json").write_text("{}")
    assert not zoo_lm.is_built(path) and not zoo_lm.is_built()
    with pytest.raises(UserError, match="rlhf-zoo prepare"):
        zoo_lm.ensure_zoo_lm(build_if_missing=False)
    (path / zoo_lm.META_FILE).write_text("{}")
    assert zoo_lm.is_built() and zoo_lm.ensure_zoo_lm(build_if_missing=False) == path


def test_the_seed_decides_the_held_out_documents_their_order_and_the_initial_weights(data: dict, tmp_path: Path):
    """``seed`` is the build's own (``ZooLMConfig``: initialisation and block order; the held-out documents are
    chosen by a seeded hash), ``split_seed`` only the sentiment task's evaluation snippets: another seed holds out
    other documents, orders the training text otherwise and starts from other weights (a build of no steps is
    its initialisation), with the same evaluation snippets; the same seed gives the same weights again."""
    from safetensors.torch import load_file

    base = {**TINY.__dict__, "steps": 0}
    (c0, e0), (c1, e1) = (
        load_corpus(ZooLMConfig(**{**base, "seed": s}), data["records"], data["gensim"]) for s in (0, 1)
    )
    assert e0 == e1
    assert {d.text for d in c0.val} != {d.text for d in c1.val}
    common = {d.text for d in c0.train} & {d.text for d in c1.train}
    assert [d.text for d in c0.train if d.text in common] != [d.text for d in c1.train if d.text in common]
    weights = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 0)):
        path = _build(data, tmp_path / name, config=ZooLMConfig(**{**base, "seed": seed}))
        weights[name] = load_file(path / "model.safetensors")
    key = "model.embed_tokens.weight"
    assert weights["a"][key].shape == weights["b"][key].shape
    assert not torch.equal(weights["a"][key], weights["b"][key])
    assert all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])
