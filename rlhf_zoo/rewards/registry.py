"""Reward models by name: ``build_reward("vader")``, ``build_reward("minilm_sentiment")``,
``build_reward("hf:<model id or local path>", label=...)``, ``build_reward("py:my_rewards.py:score")``.

One explicit table of names; keyword arguments go to the implementation's constructor and are
checked against its signature first, so a misspelt option is a one-line ``UserError``.
:func:`check_reward_spec` checks a name without building the reward (a ``py:`` function is imported
and its signature checked), so that a config is rejected before any model loads.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards.base import RewardModel
from rlhf_zoo.rewards.python import PY_PREFIX

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
    return [*REWARDS, f"{HF_PREFIX}<model id or path>", f"{PY_PREFIX}<file.py or module>:<function>"]


def _check_kwargs(name: str, target: Callable[..., Any], kw: dict[str, Any], skip: int) -> None:
    params = list(inspect.signature(target).parameters.values())[skip:]
    allowed = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise UserError(
            f"reward {name!r} has no option {', '.join(map(repr, bad))}; its options: {', '.join(allowed) or 'none'}"
        )
    hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    for key, value in kw.items():
        if key in hints and not _accepts(hints[key], value):
            tp = hints[key]
            shown = " | ".join(map(repr, typing.get_args(tp))) if typing.get_origin(tp) is Literal else tp
            raise UserError(f"reward {name!r}: option {key}={value!r} is not {getattr(shown, '__name__', shown)}")


def _accepts(tp: Any, value: Any) -> bool:
    """Whether ``value`` (as a config file or the command line gives it) fits the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(t, value) for t in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp in (int, float) and isinstance(value, bool):
        return False
    if tp is float:
        return isinstance(value, (int, float))
    cls = origin or tp
    return isinstance(value, cls) if isinstance(cls, type) else True


# Options that a task sets itself (task.reward_device, task.build_gold), never a user's reward options.
TASK_SET = ("device", "build_if_missing")


def task_set_options(name_or_spec: str, device: str, build_if_missing: bool) -> dict[str, Any]:
    """The :data:`TASK_SET` options that the reward :func:`build_reward` builds for ``name_or_spec`` takes (by
    its signature): ``device`` for ``hf:`` and ``minilm_sentiment``, ``build_if_missing`` for the latter."""
    spec = str(name_or_spec).strip()
    if spec.startswith(HF_PREFIX):
        target = _signature_target("hf")
    elif spec in REWARDS:
        target = _signature_target(spec)
    else:  # py: functions take no options; an unknown name is build_reward's error
        return {}
    params = inspect.signature(target).parameters
    given = {"device": device, "build_if_missing": build_if_missing}
    return {k: v for k, v in given.items() if k in params}


def check_reward_spec(name_or_spec: str, options: dict[str, Any] | None = None) -> None:
    """Raise ``UserError`` unless :func:`build_reward` knows ``name_or_spec`` and takes ``options`` (keyword
    arguments of its class, checked against its signature; :data:`TASK_SET` ones are the task's); loads
    nothing heavy (a ``py:`` function's file or module is imported, once per process, and its signature
    checked)."""
    spec = str(name_or_spec).strip()
    options = options or {}
    reserved = sorted(set(options) & set(TASK_SET))
    if reserved:
        raise UserError(
            f"reward {spec!r}: option {reserved[0]!r} is set by the task (task.reward_device, task.build_gold)"
        )
    if options and spec.startswith(PY_PREFIX):
        raise UserError(f"reward {spec!r} takes no options (got {', '.join(map(repr, sorted(options)))})")
    if options and (spec.startswith(HF_PREFIX) or spec in REWARDS):
        name = "hf" if spec.startswith(HF_PREFIX) else spec
        _check_kwargs(spec, _signature_target(name), options, skip=1 if name == "hf" else 0)
    if spec.startswith(HF_PREFIX):
        target = spec[len(HF_PREFIX) :].strip()
        if not target:
            raise UserError(f"reward {spec!r} names no model: use hf:<model id or local path>")
        from rlhf_zoo.hub import check_hub_model, is_local_path

        if is_local_path(target):
            folder = Path(target).expanduser()
            if folder.is_file():
                raise UserError(
                    f"reward {spec!r}: {folder} is a file, not a model's folder: name the folder that holds it"
                )
            if not folder.is_dir():
                raise UserError(f"reward {spec!r}: no such directory {target}")
            if not (folder / "config.json").is_file():  # as model.name's folder: else a hub hint, at load time
                raise UserError(f"reward {spec!r}: {folder} holds no Hugging Face model (no config.json)")
        else:
            # the packaged models are language models, not the sequence classifiers an hf: reward reads
            check_hub_model(target, what=f"reward {spec!r}", local="a local directory of a sequence classifier")
    elif spec.startswith(PY_PREFIX):
        from rlhf_zoo.rewards.python import load_python_function

        load_python_function(spec)
    elif spec not in REWARDS:
        raise UserError(f"unknown reward {spec!r}: known rewards are {', '.join(known_rewards())}")


def build_reward(name_or_spec: str, **kw: Any) -> RewardModel:
    """The reward model named ``name_or_spec``, built with options ``kw``.

    ``"vader"`` -> :class:`~rlhf_zoo.rewards.vader.VaderReward` (proxy of the sentiment task);
    ``"minilm_sentiment"`` -> :func:`~rlhf_zoo.rewards.minilm.load_minilm_sentiment` (gold);
    ``"hf:<id or path>"`` -> :class:`~rlhf_zoo.rewards.hf.HFSequenceReward`;
    ``"py:<file.py or module>:<function>"`` -> the function ``f(prompts, completions)`` as a
    :class:`~rlhf_zoo.rewards.base.CallableReward` (:mod:`rlhf_zoo.rewards.python`; no options).
    An unknown name or option raises ``UserError`` listing what is known.
    """
    spec = str(name_or_spec).strip()
    if spec.startswith(PY_PREFIX):
        if kw:
            raise UserError(f"reward {spec!r} takes no options (got {', '.join(map(repr, sorted(kw)))})")
        from rlhf_zoo.rewards.python import python_reward

        return python_reward(spec)
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
