"""Reward models by name: ``build_reward("vader")``, ``build_reward("minilm_sentiment")``,
``build_reward("hf:<model id or local path>", label=...)``.

One explicit table of names; keyword arguments go to the implementation's constructor and are
checked against its signature first, so a misspelt option is a one-line ``UserError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards.base import RewardModel

HF_PREFIX = "hf:"


def _vader(**kw: Any) -> RewardModel:
    from rlhf_zoo.rewards.vader import VaderReward

    return VaderReward(**kw)


def _minilm_sentiment(**kw: Any) -> RewardModel:
    from rlhf_zoo.rewards.minilm import load_minilm_sentiment

    return load_minilm_sentiment(**kw)


def _hf(model_name_or_path: str, **kw: Any) -> RewardModel:
    from rlhf_zoo.rewards.hf import HFSequenceReward

    return HFSequenceReward(model_name_or_path, **kw)


def _signature_target(name: str) -> Callable[..., Any]:
    if name == "vader":
        from rlhf_zoo.rewards.vader import VaderReward

        return VaderReward
    if name == "minilm_sentiment":
        from rlhf_zoo.rewards.minilm import load_minilm_sentiment

        return load_minilm_sentiment
    from rlhf_zoo.rewards.hf import HFSequenceReward

    return HFSequenceReward


REWARDS: dict[str, Callable[..., RewardModel]] = {
    "vader": _vader,
    "minilm_sentiment": _minilm_sentiment,
}


def known_rewards() -> list[str]:
    """The names :func:`build_reward` accepts."""
    return [*REWARDS, f"{HF_PREFIX}<model id or path>"]


def _check_kwargs(name: str, target: Callable[..., Any], kw: dict[str, Any], skip: int) -> None:
    params = list(inspect.signature(target).parameters.values())[skip:]
    allowed = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise UserError(
            f"reward {name!r} has no option {', '.join(map(repr, bad))}; its options: {', '.join(allowed) or 'none'}"
        )


def build_reward(name_or_spec: str, **kw: Any) -> RewardModel:
    """The reward model named ``name_or_spec``, built with options ``kw``.

    ``"vader"`` -> :class:`~rlhf_zoo.rewards.vader.VaderReward` (proxy of the sentiment task);
    ``"minilm_sentiment"`` -> :func:`~rlhf_zoo.rewards.minilm.load_minilm_sentiment` (gold);
    ``"hf:<id or path>"`` -> :class:`~rlhf_zoo.rewards.hf.HFSequenceReward`. An unknown name
    or option raises ``UserError`` listing what is known.
    """
    spec = str(name_or_spec).strip()
    if spec.startswith(HF_PREFIX):
        target = spec[len(HF_PREFIX) :].strip()
        if not target:
            raise UserError(f"reward {spec!r} names no model: use hf:<model id or local path>")
        _check_kwargs(spec, _signature_target("hf"), kw, skip=1)
        return _hf(target, **kw)
    if spec not in REWARDS:
        raise UserError(f"unknown reward {spec!r}: known rewards are {', '.join(known_rewards())}")
    _check_kwargs(spec, _signature_target(spec), kw, skip=0)
    return REWARDS[spec](**kw)
