"""``zoo-lm``: a small causal LM pretrained here, offline, on human-written text, for fast CPU suites.

A SmolLM2-135M + LoRA RL step costs 10 to 20 s on 2 CPU cores (docs/benchmarks/throughput.md), too slow
for multi-seed suites. ``zoo-lm`` is a 5 M-parameter model of the same family that writes English-like
movie-review continuations and takes an RL step an order of magnitude faster. It is an ordinary Hugging Face
folder (``LlamaForCausalLM`` + a fast tokenizer), loaded with ``AutoModelForCausalLM`` /
``AutoTokenizer.from_pretrained`` like any hub model, so it runs through the same policy, sampling,
log-prob and KL code (:class:`~rlhf_zoo.policies.hf.HFPolicy`); select it with ``model.name=zoo-lm``.

What is built (:func:`build_zoo_lm`, defaults in :class:`ZooLMConfig`):

1. Text (:mod:`rlhf_zoo.data.lm_corpus`): the 23,703 Hutto & Gilbert (2014) texts and the English
   prose of the ``gensim`` wheel's test data (news, Wikipedia), about 2.6 M characters, with
   every document that contains one of the sentiment task's evaluation prompts removed; 3 % of
   the documents held out for perplexity.
2. Tokenizer: byte-level BPE (8,192 entries) trained on the training documents with
   ``tokenizers``; ``<pad>`` = 0, ``<s>`` = 1 (prepended to every encoded text, as Llama tokenizers
   do), ``</s>`` = 2 (appended to every training document, so the model learns to stop).
3. Model: Llama (RoPE, RMSNorm, SwiGLU; the architecture of SmolLM2 and of the ``tiny`` test model,
   so the default LoRA targets apply), 4 layers, width 256, 4 heads, MLP 704, tied input/output
   embeddings: 5.3 M parameters, 2.1 M of them the embedding.
4. Training: documents packed into 128-token blocks, AdamW (weight decay 0.1 on matrices), linear
   warm-up then cosine decay to a tenth of the peak rate, gradient clipping at 1, a fixed number
   of steps (deterministic given the seed), with a tqdm bar.
5. Report: perplexity per BPE token on the held-out documents and on the sentiment task's 500
   evaluation snippets (which it never trained on), and a few sampled continuations of evaluation
   prompts, all in ``meta.json`` beside the weights, with the sources, sizes, config, seconds
   and versions.

Files: ``cache_dir("models", "zoo-lm") / <tag>`` (:func:`zoo_lm_path`; the tag is a hash of the
config, so a changed config gets its own folder). The folder is built under a temporary name and
renamed into place once ``meta.json`` is written, so a folder with ``meta.json`` is complete; a
second build finds it and returns at once.

Recommended policy settings: the model is small enough that full fine-tuning costs about the
same as LoRA and learns faster; see the README ("Language models").
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import atomic_dir, atomic_write_json, build_lock, reuse_built, umask_mode
from rlhf_zoo.paths import cache_dir

if TYPE_CHECKING:
    from rlhf_zoo.data.hutto import Record
    from rlhf_zoo.data.lm_corpus import Corpus, Doc

ZOO_LM = "zoo-lm"
META_FILE = "meta.json"
SPECIALS = ("<pad>", "<s>", "</s>")  # ids 0, 1, 2
SOURCES = ("hutto", "gensim")


@dataclass(frozen=True)
class ZooLMConfig:
    """Everything that decides the built model (all recorded in ``meta.json``).

    Attributes:
        sources: text sources, a subset of ``("hutto", "gensim")``.
        val_fraction: share of documents held out for perplexity.
        max_train_chars: 0 = all training text; > 0 keeps about that many characters (tests).
        prompt_words: the evaluation prompts kept out of the text are the first ``prompt_words``
            words of each evaluation snippet (the sentiment task's ``task.prompt_words`` default).
        split_seed, n_heldout, n_eval_prompts, min_prompt_words: the arguments of
            :func:`rlhf_zoo.data.hutto.split_hutto` that define the sentiment task's evaluation
            snippets (keep them equal to the task's, i.e. ``prompt_texts``' defaults).
        vocab_size: BPE vocabulary size, the three special tokens included.
        hidden_size, num_layers, num_heads, intermediate_size, max_positions: the Llama shape.
        seq_len: tokens per training block; batch_size: blocks per step; steps: optimiser steps.
        lr, warmup_steps, min_lr_frac, weight_decay, grad_clip: the optimisation.
        seed: initialisation and block order.
        n_samples, sample_tokens: the sampled continuations recorded in ``meta.json``.
    """

    sources: tuple[str, ...] = SOURCES
    val_fraction: float = 0.03
    max_train_chars: int = 0
    prompt_words: int = 6
    split_seed: int = 0
    n_heldout: int = 3000
    n_eval_prompts: int = 500
    min_prompt_words: int = 8
    vocab_size: int = 8192
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 704
    max_positions: int = 256
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 600
    lr: float = 2e-3
    warmup_steps: int = 30
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    n_samples: int = 6
    sample_tokens: int = 24

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown or not self.sources:
            raise UserError(f"zoo-lm sources must be a non-empty subset of {SOURCES}, got {self.sources}")
        if self.hidden_size % self.num_heads:
            raise UserError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.seq_len > self.max_positions:
            raise UserError(f"seq_len {self.seq_len} exceeds max_positions {self.max_positions}")
        if self.vocab_size <= len(SPECIALS) + 256:
            raise UserError(f"vocab_size must exceed {len(SPECIALS) + 256} (specials + the 256 byte tokens)")

    def tag(self) -> str:
        """The cache folder name: the shape, then a hash of the whole config."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return f"llama-{self.num_layers}x{self.hidden_size}-v{self.vocab_size}-{digest}"


def zoo_lm_path(config: ZooLMConfig | None = None) -> Path:
    """Where the model of ``config`` (default :class:`ZooLMConfig`) lives; not created."""
    return cache_dir("models", ZOO_LM) / (config or ZooLMConfig()).tag()


def is_built(path: str | os.PathLike[str] | None = None) -> bool:
    """Whether a complete model (one with ``meta.json``) is at ``path`` (default location)."""
    return (Path(path) if path is not None else zoo_lm_path()).joinpath(META_FILE).is_file()


def read_meta(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``meta.json`` of a built model."""
    with open((Path(path) if path is not None else zoo_lm_path()) / META_FILE, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------- text


def load_corpus(
    config: ZooLMConfig,
    records: Sequence[Record] | None = None,
    gensim_files: dict[str, str] | None = None,
    verbose: bool = False,
) -> tuple[Corpus, list[str]]:
    """The training/held-out documents of ``config`` and the sentiment task's evaluation snippets.

    ``records`` defaults to :func:`rlhf_zoo.data.hutto.load_hutto` and ``gensim_files`` to
    :func:`rlhf_zoo.data.gensim_text.load_gensim_texts` (each downloads once, then reads its cache).
    """
    from rlhf_zoo.data.hutto import load_hutto, split_by
    from rlhf_zoo.data.lm_corpus import EvalGuard, build_corpus, gensim_docs, hutto_docs

    records = load_hutto(verbose=verbose) if records is None else records
    parts = split_by(records, config)
    eval_snippets = [r.text for r in parts.prompt_eval]
    docs: list[Doc] = []
    if "hutto" in config.sources:
        docs += hutto_docs(records)
    if "gensim" in config.sources:
        if gensim_files is None:
            from rlhf_zoo.data.gensim_text import load_gensim_texts

            gensim_files = load_gensim_texts(verbose=verbose)
        docs += gensim_docs(gensim_files)
    corpus = build_corpus(
        docs,
        EvalGuard(eval_snippets, config.prompt_words),
        val_fraction=config.val_fraction,
        seed=config.seed,
        max_train_chars=config.max_train_chars,
    )
    return corpus, eval_snippets


def corpus_sha256(texts: Sequence[str]) -> str:
    """A fingerprint of a list of documents (recorded in ``meta.json`` for the training text)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- tokenizer + model


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (see the module docstring)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", padding_side="left"
    )


def new_model(config: ZooLMConfig, tokenizer: Any) -> Any:
    """A freshly initialised ``LlamaForCausalLM`` of ``config``'s shape, sized to ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(cfg)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id
    return model


def pack(tokenizer: Any, texts: Sequence[str], seq_len: int) -> torch.Tensor:
    """``<s> text </s>`` for every text, concatenated and cut into ``[n, seq_len]`` blocks (the
    last, shorter block is padded with ``<pad>``, which the loss ignores)."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for enc in tokenizer(list(texts), add_special_tokens=True)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    n = math.ceil(len(ids) / seq_len)
    ids.extend([tokenizer.pad_token_id] * (n * seq_len - len(ids)))
    return torch.tensor(ids, dtype=torch.long).view(n, seq_len)


def _labels(blocks: torch.Tensor, pad_id: int) -> torch.Tensor:
    # Only the padding at the end of the last block is <pad>: documents never contain it.
    return blocks.masked_fill(blocks == pad_id, -100)


@torch.no_grad()
def perplexity(model: Any, blocks: torch.Tensor, pad_id: int, batch_size: int = 32) -> float:
    """``exp`` of the mean next-token NLL over all non-pad targets of ``blocks``."""
    model.eval()
    nll, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i : i + batch_size]
        logits = model(input_ids=x, attention_mask=(x != pad_id).long()).logits[:, :-1].float()
        y = _labels(x, pad_id)[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        nll += float(loss)
        count += int((y != -100).sum())
    return math.exp(nll / max(1, count))


@torch.no_grad()
def snippet_perplexity(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 64) -> float:
    """Perplexity of each ``<s> text </s>`` on its own (no packing), pooled over all tokens."""
    model.eval()
    nll, count = 0.0, 0
    eos = tokenizer.eos_token_id
    for i in range(0, len(texts), batch_size):
        rows = [ids + [eos] for ids in tokenizer(list(texts[i : i + batch_size]))["input_ids"]]
        width = max(map(len, rows))
        x = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(x)
        for j, r in enumerate(rows):  # right padding: positions start at 0 for every row
            x[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1
        logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
        y = x[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        nll += float(loss)
        count += int((y != -100).sum())
    return math.exp(nll / max(1, count))


@torch.no_grad()
def sample_continuations(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, seed: int) -> list:
    """One sampled continuation (temperature 1, no top-p) per prompt, seeded; ``[(prompt, text)]``."""
    model.eval()
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for p in prompts:
            enc = tokenizer([p], return_tensors="pt")
            gen = model.generate(
                **enc, do_sample=True, top_p=1.0, top_k=0, temperature=1.0, max_new_tokens=max_new_tokens
            )
            out.append([p, tokenizer.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)])
    return out


def _lr_factor(step: int, config: ZooLMConfig) -> float:
    """Linear warm-up to 1, then cosine decay towards ``min_lr_frac``, which step ``steps`` (one past the last
    step, 0-based) would reach: the last step's factor is a little above it."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    frac = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_frac + (1 - config.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def train_model(
    model: Any,
    blocks: torch.Tensor,
    config: ZooLMConfig,
    pad_id: int,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Pretrain ``model`` on ``blocks`` (see the module docstring); training figures."""
    from tqdm.auto import tqdm

    if len(blocks) == 0:
        raise ValueError("no blocks to train on")

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, config))
    gen = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    labels = _labels(blocks, pad_id)
    ema, seen = None, 0
    model.train()
    bar = tqdm(total=config.steps, desc=f"pretraining {ZOO_LM}", unit="step", disable=not progress)
    try:
        for step in range(config.steps):
            while len(order) < config.batch_size:  # a new pass over the blocks, in a fresh order (more than
                order += torch.randperm(len(blocks), generator=gen).tolist()  # one if a batch outnumbers them)
            idx, order = order[: config.batch_size], order[config.batch_size :]
            loss = model(input_ids=blocks[idx], labels=labels[idx]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            seen += len(idx) * config.seq_len
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}")
            if on_step is not None:
                on_step(step + 1)
    finally:
        bar.close()
    return {
        "steps": config.steps,
        "tokens_seen": seen,
        "epochs": round(seen / max(1, blocks.numel()), 3),
        "final_train_loss_ema": None if ema is None else round(ema, 4),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("rlhf_zoo", "torch", "transformers", "tokenizers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _source_table(config: ZooLMConfig, corpus: Corpus) -> list[dict[str, Any]]:
    from rlhf_zoo.data import gensim_text, hutto

    about = {
        "hutto": f"Hutto & Gilbert (ICWSM 2014) texts, from the {hutto.SDIST_REQUIREMENT} sdist on PyPI (MIT)",
        "gensim": f"test data of the {gensim_text.REQUIREMENT} wheel on PyPI (read from the zip, not installed)",
    }
    sizes = corpus.sizes()
    out = []
    for name in config.sources:
        for sub, s in sizes.items():
            if sub.split("/", 1)[0] == name:
                desc = gensim_text.FILES.get(sub.split("/", 1)[1], "") if name == "gensim" else ""
                out.append(
                    {
                        "source": sub,
                        "from": about[name],
                        **({"what": desc} if desc else {}),
                        **s,
                        "excluded_eval": corpus.excluded.get(sub, 0),
                    }
                )
    return out


def _corpus_record(
    config: ZooLMConfig,
    corpus: Corpus,
    tokenizer: Any,
    train_blocks: torch.Tensor,
    val_blocks: torch.Tensor,
    n_eval: int,
) -> dict[str, Any]:
    """meta.json's ``corpus``: documents, characters and tokens trained on and held out, what was dropped
    (duplicates, documents holding one of the ``n_eval`` sentiment evaluation prompts) and the training
    text's hash."""
    train_texts = [d.text for d in corpus.train]
    return {
        "train_docs": len(train_texts),
        "train_chars": sum(map(len, train_texts)),
        "train_tokens": int((train_blocks != tokenizer.pad_token_id).sum()),
        "val_docs": len(corpus.val),
        "val_tokens": int((val_blocks != tokenizer.pad_token_id).sum()),
        "duplicates_dropped": corpus.duplicates,
        "excluded_eval": corpus.excluded,
        "exclusion": (
            f"documents containing the first {config.prompt_words} words of any of the sentiment task's "
            f"{n_eval} evaluation snippets (case and punctuation ignored) are dropped"
        ),
        "train_sha256": corpus_sha256(train_texts),
    }


def _evaluate(
    model: Any, tokenizer: Any, val_blocks: torch.Tensor, eval_snippets: Sequence[str], config: ZooLMConfig
) -> tuple[float, float, list]:
    """The held-out perplexity, the sentiment evaluation snippets' perplexity, and a sampled continuation
    of the first ``n_samples`` snippets' prompts (their first ``prompt_words`` words)."""
    from rlhf_zoo.data.hutto import prompt_prefix

    ppl = perplexity(model, val_blocks, tokenizer.pad_token_id)
    eval_ppl = snippet_perplexity(model, tokenizer, eval_snippets)
    prompts = [prompt_prefix(t, config.prompt_words) for t in eval_snippets[: config.n_samples]]
    return ppl, eval_ppl, sample_continuations(model, tokenizer, prompts, config.sample_tokens, config.seed)


@dataclass
class _Pretrained:
    """What :func:`_pretrain` hands to :func:`_save`: the model, its tokenizer and blocks, and its report."""

    tokenizer: Any
    model: Any
    train_blocks: torch.Tensor
    val_blocks: torch.Tensor
    stats: dict[str, Any]  # train_model's
    ppl: float  # held out
    eval_ppl: float  # the sentiment evaluation snippets
    samples: list


def _pretrain(
    cfg: ZooLMConfig,
    corpus: Corpus,
    eval_snippets: Sequence[str],
    progress: bool,
    on_step: Callable[[int], None] | None,
    seconds: dict[str, float],
    say: Callable[..., None],
) -> _Pretrained:
    """Steps 2 to 5 of the module docstring under ``cfg.seed``, leaving the caller's random state alone;
    adds their durations to ``seconds``."""
    train_texts, val_texts = [d.text for d in corpus.train], [d.text for d in corpus.val]
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        tokenizer = train_tokenizer(train_texts, cfg.vocab_size)
        train_blocks = pack(tokenizer, train_texts, cfg.seq_len)
        val_blocks = pack(tokenizer, val_texts, cfg.seq_len)
        seconds["tokenizer"] = time.perf_counter() - t0
        model = new_model(cfg, tokenizer)
        n_params = sum(p.numel() for p in model.parameters())
        say(
            f"{ZOO_LM}: Llama {cfg.num_layers}x{cfg.hidden_size}, {n_params / 1e6:.2f} M parameters, "
            f"vocabulary {len(tokenizer)}; {train_blocks.numel() / 1e6:.2f} M training tokens; {cfg.steps} steps"
        )
        t0 = time.perf_counter()
        stats = train_model(model, train_blocks, cfg, tokenizer.pad_token_id, progress, on_step)
        seconds["train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ppl, eval_ppl, samples = _evaluate(model, tokenizer, val_blocks, eval_snippets, cfg)
        seconds["evaluate"] = time.perf_counter() - t0
    return _Pretrained(tokenizer, model, train_blocks, val_blocks, stats, ppl, eval_ppl, samples)


def _meta(
    cfg: ZooLMConfig, corpus: Corpus, built: _Pretrained, n_eval: int, seconds: dict[str, float]
) -> dict[str, Any]:
    """``meta.json``: the perplexities, architecture, special ids, sources, corpus, training figures,
    samples, config, seconds and versions of a build."""
    tokenizer, model = built.tokenizer, built.model
    return {
        "name": ZOO_LM,
        "heldout_perplexity": round(built.ppl, 3),
        "sentiment_eval_perplexity": round(built.eval_ppl, 3),
        "perplexity_unit": "per BPE token of this model's tokenizer, </s> included",
        "architecture": type(model).__name__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "special_tokens": {
            "pad": tokenizer.pad_token_id,
            "bos": tokenizer.bos_token_id,
            "eos": tokenizer.eos_token_id,
        },
        "sources": _source_table(cfg, corpus),
        "corpus": _corpus_record(cfg, corpus, tokenizer, built.train_blocks, built.val_blocks, n_eval),
        **built.stats,
        "samples": built.samples,
        "sample_settings": f"temperature 1, top_p 1, {cfg.sample_tokens} new tokens, seed {cfg.seed}",
        "config": asdict(cfg),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "torch_threads": torch.get_num_threads(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def build_zoo_lm(
    force: bool = False,
    progress: bool = True,
    *,
    path: str | os.PathLike[str] | None = None,
    config: ZooLMConfig | None = None,
    records: Sequence[Record] | None = None,
    gensim_files: dict[str, str] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Build ``zoo-lm`` once (a few minutes on 2 CPU cores) and return its folder.

    Returns at once when a complete model of ``config`` is already at ``path`` and ``force`` is False (one
    of another config there is refused in one line rather than returned).
    Otherwise: gather the text (:func:`load_corpus`), train the tokenizer, pretrain the model,
    measure perplexity, sample a few continuations, and write model, tokenizer and ``meta.json``
    into a temporary sibling folder renamed to ``path`` only when complete.

    Args:
        force: rebuild even if a model is there (replaced only on success).
        progress: print the steps and show a tqdm bar over the training steps.
        path: output folder; default :func:`zoo_lm_path` of ``config``.
        config: the build; default :class:`ZooLMConfig`.
        records / gensim_files: the texts (default: downloaded once and cached); overriding
            either needs an explicit ``path``, so that a model of other text never takes the
            default one's place.
        on_step: called with the step number after every optimiser step (tests use it).
    """
    cfg = config or ZooLMConfig()
    if path is None and (records is not None or gensim_files is not None):
        raise ValueError("a build from given records or gensim_files needs an explicit path=...")
    out = Path(path) if path is not None else zoo_lm_path(cfg)
    if reuse_built(out, cfg, ZOO_LM, "rebuild it with force=True or choose another path", force, META_FILE):
        return out
    say = print if progress else (lambda *a, **k: None)
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}

    corpus, eval_snippets = load_corpus(cfg, records, gensim_files, verbose=progress)
    if not corpus.train or not corpus.val:
        raise UserError(f"{ZOO_LM}: no training or held-out text (train {len(corpus.train)}, val {len(corpus.val)})")
    seconds["text"] = time.perf_counter() - t_start
    say(
        f"{ZOO_LM}: {len(corpus.train)} training documents "
        f"({sum(len(d.text) for d in corpus.train) / 1e6:.2f} M characters), "
        f"{len(corpus.val)} held out; {sum(corpus.excluded.values())} dropped for containing a sentiment eval prompt"
    )
    built = _pretrain(cfg, corpus, eval_snippets, progress, on_step, seconds, say)

    with atomic_dir(out) as tmp:
        t0 = time.perf_counter()
        built.model.save_pretrained(tmp)
        built.tokenizer.save_pretrained(tmp)
        seconds["save"] = time.perf_counter() - t0
        seconds["total"] = time.perf_counter() - t_start
        atomic_write_json(tmp / META_FILE, _meta(cfg, corpus, built, len(eval_snippets), seconds))
        for f in tmp.iterdir():
            if f.is_file():
                os.chmod(f, umask_mode(0o666))
    say(
        f"{ZOO_LM}: held-out perplexity {built.ppl:.1f} (sentiment eval snippets {built.eval_ppl:.1f}); "
        f"built in {seconds['total']:.0f} s; in {out}"
    )
    return out


def ensure_zoo_lm(build_if_missing: bool = True, progress: bool = True) -> Path:
    """The default model's folder, building it first (minutes, with a progress bar) if missing."""
    path = zoo_lm_path()
    if is_built(path):
        return path
    if not build_if_missing:
        raise UserError(f"{ZOO_LM} is not built yet (no model in {path}): run `rlhf-zoo prepare` once")
    with build_lock(path, ZOO_LM):
        if is_built(path):  # another process built it while this one waited
            return path
        print(f"{ZOO_LM} is not built yet: building it now (a few minutes on 2 CPU cores, once) ...")
        return build_zoo_lm(progress=progress)


if __name__ == "__main__":  # python -m rlhf_zoo.policies.zoo_lm [force]: build only this model
    import sys

    build_zoo_lm(force="force" in sys.argv[1:])
