"""Random streams keyed by what is drawn, not by who draws it (docs/architecture.md, "Same result on
any number of processes").

Every random draw of a step or an evaluation comes from a ``torch.Generator`` derived afresh from a key:
the run's seed, the name of the draw (``policy``, ``base``, ``target``, ``eval/policy``, ...), the step or
evaluation round, and the prompt's position in the *global* batch (or, for the base cache, the prompt
itself). So a prompt's completions depend neither on which process samples them nor on which other
prompts share its batch, and nothing has to be checkpointed: a resumed run derives the same generators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

Key = int | str


def _encode(key: tuple[Key, ...]) -> bytes:
    """An unambiguous byte string for a key: ints as ``i<digits>;``, strings as ``s<length>:<utf-8>``,
    so that distinct keys never collide by concatenation (``("ab", "c")`` vs ``("a", "bc")``, ``1``
    vs ``"1"``) and the encoding of a key is the concatenation of its parts' encodings."""
    out = []
    for part in key:
        if type(part) is int:
            out.append(b"i%d;" % part)
        elif type(part) is str:
            data = part.encode()
            out.append(b"s%d:" % len(data) + data)
        else:
            raise TypeError(f"key parts must be int or str, got {type(part).__name__}")
    return b"".join(out)


def _seed(encoded: bytes) -> int:
    digest = hashlib.blake2b(encoded, digest_size=8, person=b"rlhf_zoo.rng").digest()
    return int.from_bytes(digest, "little") >> 1


def derive_seed(*key: Key) -> int:
    """A 63-bit seed mixing every part of ``key`` (ints and strings) through BLAKE2b."""
    return _seed(_encode(key))


def keyed_generator(*key: Key) -> torch.Generator:
    """A fresh CPU generator seeded by ``derive_seed(*key)``."""
    return torch.Generator().manual_seed(derive_seed(*key))


@dataclass(frozen=True)
class Streams:
    """The generators of one step (or one evaluation round) of a run.

    Attributes:
        seed: the run's seed.
        round: the step (training) or the step at which an evaluation runs.
    """

    seed: int
    round: int

    def per_prompt(self, name: str, positions: Sequence[int]) -> list[torch.Generator]:
        """One generator per prompt, keyed by (seed, name, round, the prompt's global batch position)."""
        prefix = _encode((self.seed, name, self.round))
        return [torch.Generator().manual_seed(_seed(prefix + _encode((int(i),)))) for i in positions]

    def keyed(self, name: str, *key: Key) -> torch.Generator:
        """A generator keyed by (seed, name, *key), independent of the round (for draws made once, e.g. the
        base cache's samples of a prompt)."""
        return keyed_generator(self.seed, name, *key)
