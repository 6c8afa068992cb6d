"""``collect`` split over processes with a base cache (BoND's Monte Carlo quantiles and cache target): each
process draws its share of the step's missing prompts and the new entries are exchanged, so that every process
ends with the whole cache and its share of the data equals the one-process run's. Two ranks run here as two
threads whose ``gather_objects`` exchanges objects through a barrier, as an all-gather would."""

import threading

import torch

from rlhf_zoo.algorithms.base import Needs
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, collect


class ThreadShard:
    """Rank ``rank`` of ``world`` threads; ``gather_objects`` returns every rank's object, by rank."""

    def __init__(self, rank, world, slots, barrier):
        self.rank, self.world, self.slots, self.barrier = rank, world, slots, barrier

    def gather(self, x):
        raise AssertionError("not needed")

    def gather_objects(self, obj):
        self.slots[self.rank] = obj
        self.barrier.wait()
        out = list(self.slots)
        self.barrier.wait()  # nobody writes the next exchange before everyone has read this one
        return out


def run_ranks(world, fn):
    """``fn(shard)`` in ``world`` threads, one per rank: the results by rank (an exception in one is raised)."""
    slots, barrier = [None] * world, threading.Barrier(world, timeout=60)
    results, errors = [None] * world, []

    def body(rank):
        try:
            results[rank] = fn(ThreadShard(rank, world, slots, barrier))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def entry_texts(cache):
    return {key: roll.texts for key, (roll, _) in cache.entries.items()}


def test_two_processes_build_the_one_process_cache_and_collect_their_share_of_its_data(exact_task, three_roles):
    needs = Needs(samples=2, quantiles="mc", base="ref", cache_size=5, target="cache", target_n=3)
    prompts = ["x0", "x1", "x2", "x3", "x1", "x2"]  # repeats: a prompt's entry is drawn once, by one process

    def one_step(shard, cache):
        return collect(needs, three_roles, exact_task, prompts, streams=Streams(0, 2), cache=cache, shard=shard)

    whole_cache = BaseCache(5)
    whole = one_step(None, whole_cache)
    caches = [BaseCache(5), BaseCache(5)]
    parts = run_ranks(2, lambda shard: one_step(shard, caches[shard.rank]))
    for rank, part in enumerate(parts):
        groups = list(range(rank, len(prompts), 2))
        assert part.prompts == prompts[rank::2]
        assert entry_texts(caches[rank]) == entry_texts(whole_cache)  # every process holds the whole cache
        assert torch.equal(part.quantiles, whole.quantiles.view(-1, 2)[groups].reshape(-1))
        assert torch.equal(part.quantiles_lt, whole.quantiles_lt.view(-1, 2)[groups].reshape(-1))
        assert part.target.texts == [whole.target.texts[g] for g in groups]
