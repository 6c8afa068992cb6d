"""Length-bucketed batches of the gold model's build (rlhf_zoo.rewards.minilm_build.length_buckets)."""

import torch

from rlhf_zoo.rewards.minilm_build import length_buckets


def _lengths(n: int) -> list[int]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(1, 64, (n,), generator=g).tolist()


def test_every_index_once_and_batch_count_as_plain_batches() -> None:
    n, bs = 1003, 32
    lengths = _lengths(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    batches = length_buckets(perm, lengths, bs, 5, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == -(-n // bs)
    assert all(len(b) <= bs for b in batches)


def test_buckets_pad_less_than_random_batches() -> None:
    n, bs = 3200, 32
    lengths = _lengths(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    plain = length_buckets(perm, lengths, bs, 0, torch.Generator().manual_seed(0))
    bucketed = length_buckets(perm, lengths, bs, 50, torch.Generator().manual_seed(0))
    assert plain == [perm[i : i + bs] for i in range(0, n, bs)]

    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    # with 63 possible lengths and 100 runs of 32, sorted runs pad to within a length or two
    assert padded(bucketed) < 0.6 * padded(plain)
    # the batch order is shuffled, not sorted by length
    maxima = [max(lengths[i] for i in b) for b in bucketed]
    assert maxima != sorted(maxima)


def test_runs_by_hand_sorted_stably_and_cut() -> None:
    """perm 0..7 with lengths 5,1,4,2,8,3,7,6, batches of 2, runs of 2 batches: the runs [0,1,2,3] and
    [4,5,6,7] sort to [1,3,2,0] and [5,7,6,4] and are cut in two each (sorting all eight, or runs of 6, would
    pair [5,2] or [0,4]); equal lengths keep the order of perm (a stable sort)."""
    by_len = length_buckets(list(range(8)), [5, 1, 4, 2, 8, 3, 7, 6], 2, 2, torch.Generator().manual_seed(0))
    assert sorted(by_len) == [[1, 3], [2, 0], [5, 7], [6, 4]]
    ties = length_buckets([3, 1, 2, 0, 5, 4], [1] * 6, 2, 2, torch.Generator().manual_seed(0))
    assert sorted(ties) == [[2, 0], [3, 1], [5, 4]]


def test_batch_order_comes_from_the_generator() -> None:
    """The same generator seed gives the same batch order (a rebuild is reproducible), another seed another."""
    n, bs = 3200, 32
    lengths = _lengths(n)
    perm = list(range(n))

    def order(seed: int) -> list[list[int]]:
        return length_buckets(perm, lengths, bs, 5, torch.Generator().manual_seed(seed))

    assert order(7) == order(7) != order(8)
