"""A command's own ``key=value`` options, typed, split from the training overrides it passes on.

    @dataclass
    class BenchOptions:
        suite: str = ""
        seeds: list[int] | None = None
        render_only: bool = False

    opts, overrides = split_options(["suite=exact", "seeds=0,1", "train.steps=5"], BenchOptions, "bench")
    # opts == BenchOptions(suite="exact", seeds=[0, 1]), overrides == ["train.steps=5"]

A command declares its options as a dataclass: each field a key, its default, its type, and one line
of documentation in the class's ``Attributes:`` docstring. :func:`split_options` takes the arguments
whose key is a field, converts them and checks their types through an OmegaConf structured config
(the same machinery as the run config in :mod:`rlhf_zoo.config`), and passes every other
``key=value`` on unchanged, as a string, in order. Conversions:

- ``bool``: true/1/yes/on or false/0/no/off (:func:`rlhf_zoo.io.parse_bool`);
- ``list[int]``, ``list[str]``, ...: a comma-separated list (``seeds=0,1,2``; empty items dropped);
- ``int``, ``float``, ``str``: as OmegaConf converts them; ``X | None`` fields default to None.

A value of the wrong type, or an argument without ``=``, is one :class:`~rlhf_zoo.errors.UserError`
line that names the command and the key (the command line prints it and exits with code 2).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import parse_bool

T = TypeVar("T")

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _unwrap(tp: Any) -> Any:
    """``X`` of ``X | None`` (and of ``Optional[X]``); ``tp`` otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _item_type(tp: Any) -> Any | None:
    """The item type of a list field, None for a scalar field."""
    tp = _unwrap(tp)
    if typing.get_origin(tp) is list:
        return typing.get_args(tp)[0]
    return None


def _kind(tp: Any) -> str:
    """How an error message names the type a key wants."""
    item = _item_type(tp)
    if item is not None:
        plural = {int: "integers", float: "numbers"}.get(item, "values")
        return f"a comma-separated list of {plural}"
    return _KINDS.get(_unwrap(tp), f"a {getattr(_unwrap(tp), '__name__', tp)}")


def pairs(args: list[str], command: str) -> list[tuple[str, str]]:
    """``key=value`` arguments as (key, value) pairs; one line naming ``command`` for anything else."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if not eq or not key.strip():
            raise UserError(f"{command}: expected key=value, got {a!r}")
        out.append((key.strip(), value))
    return out


def split_options(args: list[str], options: type[T], command: str) -> tuple[T, list[str]]:
    """(the command's options, the other ``key=value`` arguments in their order).

    Args:
        args: ``key=value`` strings from the command line.
        options: the command's options dataclass (every field has a default).
        command: the command's name, for error messages (``"bench"``, ``"profile"``).

    Raises:
        UserError: an argument without ``=`` (or with an empty key), or an option's value of the
            wrong type; one line naming ``command`` and the key.
    """
    hints = typing.get_type_hints(options)
    names = {f.name for f in dataclasses.fields(options)}  # type: ignore[arg-type]
    given: dict[str, Any] = {}
    raw: dict[str, str] = {}
    rest: list[str] = []
    for a, (key, value) in zip(args, pairs(args, command), strict=True):
        if key not in names:
            rest.append(a)
            continue
        raw[key] = value
        item = _item_type(hints[key])
        if item is not None:
            given[key] = [x.strip() for x in value.split(",") if x.strip()]
            if not given[key]:  # only=, or seeds= with an unset shell variable: not silently every sweep or seed
                raise UserError(f"{command}: {key} lists nothing ({key}={value}): give it values, or leave it out")
        elif _unwrap(hints[key]) is bool:
            try:
                given[key] = parse_bool(value)
            except ValueError:
                raise UserError(f"{command}: {key} must be {_kind(hints[key])}, got {value!r}") from None
        elif not value.strip():  # out= with an unset shell variable: not silently the default, nor here
            raise UserError(f"{command}: {key} is empty ({key}=): give it a value, or leave it out")
        else:
            given[key] = value
    schema = OmegaConf.structured(options)
    for key, value in given.items():  # one key at a time, so that an error names its key
        try:
            OmegaConf.merge(schema, {key: value})
        except OmegaConfBaseException:
            raise UserError(f"{command}: {key} must be {_kind(hints[key])}, got {raw[key]!r}") from None
    return OmegaConf.to_object(OmegaConf.merge(schema, given)), rest  # type: ignore[return-value]


def set_away_from_default(c: Any, name: str) -> bool:
    """Whether config dataclass ``c`` sets ``name`` away from its default (False where it has no such field).

    How a check that refuses or warns about an inert setting spares the default: a resolved config
    holds every default, so only a value the user changed is named (``algo.minibatches``, the
    sentiment task's ``eval_fraction``, ...).
    """
    default = next((f.default for f in dataclasses.fields(c) if f.name == name), dataclasses.MISSING)
    return default is not dataclasses.MISSING and getattr(c, name) != default


__all__ = ["pairs", "set_away_from_default", "split_options"]
