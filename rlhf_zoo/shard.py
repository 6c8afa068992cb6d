"""How a global batch is split across processes (implemented by :class:`rlhf_zoo.runtime.Runtime`).

Process ``rank`` of ``world`` holds global rows ``rank, rank + world, rank + 2·world, ...`` of every
batch (a strided split, equal shares). Code that needs the whole batch for a statistic (a batch-mean
baseline, the base cache) gathers it with :meth:`Shard.gather`, computes on global rows in global order,
and keeps its own rows with :func:`local_rows`, so the result is the same on any number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import Tensor

T = TypeVar("T")


@runtime_checkable
class Shard(Protocol):
    rank: int
    world: int

    def gather(self, x: Tensor) -> Tensor:
        """This process's rows [b, ...] → the global rows [world·b, ...] in global order (every
        process holds b rows, the same b; no gradient)."""
        ...

    def gather_objects(self, obj: Any) -> list[Any]:
        """One picklable object per process, by rank."""
        ...


def positions(n: int, shard: Shard | None) -> list[int]:
    """The global positions of this process's share of n items."""
    if shard is None:
        return list(range(n))
    return list(range(shard.rank, n, shard.world))


def local_items(items: Sequence[T], shard: Shard | None) -> list[T]:
    """This process's share of a list."""
    return [items[i] for i in positions(len(items), shard)]


def local_rows(x: Tensor, shard: Shard | None) -> Tensor:
    """This process's rows of a global tensor [world·b, ...] → [b, ...]."""
    return x if shard is None or shard.world == 1 else x[shard.rank :: shard.world]


def interleave(by_rank: Tensor, world: int) -> Tensor:
    """[world·b, ...] concatenated by rank (what an all-gather returns) → [world·b, ...] in global order."""
    if world == 1:
        return by_rank
    b = by_rank.shape[0] // world
    return by_rank.reshape(world, b, *by_rank.shape[1:]).transpose(0, 1).reshape(by_rank.shape)
