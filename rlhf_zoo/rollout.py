"""Collect what an algorithm declared in its :class:`~rlhf_zoo.algorithms.base.Needs`.

One step is two stages:

1. :func:`collect` (no gradient): sample from π, score with the proxy reward, compute reference /
   anchor log-probs, quantiles against the base distribution (exact or from the cache), fresh base
   samples and the forward-term targets. Every algorithm goes through this one function.
2. :func:`make_batch` (with gradient): recompute log π on a minibatch of prompt groups, so that
   PPO-lite's epochs see the current policy while everything in stage 1 stays fixed.

:class:`BaseCache` keeps k base completions per prompt with their proxy rewards, drawn once per
(prompt, base role, anchor version) and reused for quantiles and targets (ALGORITHMS.md §3).

Randomness: every draw for the prompt at global batch position i uses generators keyed by (seed, draw
name, step, i) (:mod:`rlhf_zoo.rng`), and with several processes each collects its share of the
global batch (:mod:`rlhf_zoo.shard`), so a step collects the same data on any number of processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from rlhf_zoo.algorithms.base import Batch, Needs
from rlhf_zoo.functional.best_of_n import best_of_n_select
from rlhf_zoo.functional.kl import chosen_logprobs
from rlhf_zoo.functional.quantile import quantile_estimate, quantile_estimate_strict
from rlhf_zoo.policies.base import Generators, Policy, Role, Rollout, concat_rollouts
from rlhf_zoo.rewards.base import checked_score
from rlhf_zoo.rng import Streams
from rlhf_zoo.shard import Shard, local_items, positions
from rlhf_zoo.tasks.base import Task

Probe = Callable[[], AbstractContextManager[Any]]


@dataclass
class Costs:
    """Running totals of what training spent: completions, generated tokens, reward calls, and
    wall-clock seconds per phase (``generate``, ``reward``, ``logprobs``, ``update``)."""

    completions: int = 0
    tokens: int = 0
    reward_calls: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict, repr=False, compare=False)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time the block as ``phase``; a probe registered for the phase (:meth:`probe`) runs around it."""
        t0 = time.perf_counter()
        try:
            with self.probes[phase]() if phase in self.probes else nullcontext():
                yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def probe(self, phase: str, make: Probe | None) -> None:
        """Run every ``phase`` block inside a fresh ``make()`` context (e.g. a FLOP counter for
        ``update``: ``rlhf-zoo profile``); None removes it."""
        if make is None:
            self.probes.pop(phase, None)
        else:
            self.probes[phase] = make

    def copy(self) -> Costs:
        """The counters and timings as they are now (no probes)."""
        return Costs(self.completions, self.tokens, self.reward_calls, dict(self.seconds))

    def sampled(self, rollout: Rollout) -> None:
        self.completions += len(rollout)
        self.tokens += int(rollout.response_mask.sum())

    def as_dict(self) -> dict[str, int]:
        return {
            "cost/completions": self.completions,
            "cost/tokens": self.tokens,
            "cost/reward_calls": self.reward_calls,
        }


def score(task: Task, rollout: Rollout, costs: Costs | None = None, gold: bool = False) -> Tensor:
    """Proxy (or gold) rewards of a rollout's completions: [N] float32."""
    reward = task.gold if gold else task.proxy
    if reward is None:
        raise ValueError("this task has no gold reward")
    if costs is None:
        return checked_score(reward, rollout.prompts, rollout.texts)
    costs.reward_calls += len(rollout)
    with costs.timed("reward"):
        return checked_score(reward, rollout.prompts, rollout.texts)


def sample(
    policy: Policy, prompts: list[str], n: int, role: Role, generator: Generators, costs: Costs | None
) -> Rollout:
    with costs.timed("generate") if costs is not None else nullcontext():
        rollout = policy.sample(prompts, n, role=role, generator=generator)
    if costs is not None:
        costs.sampled(rollout)
    return rollout


def _timed(costs: Costs | None, phase: str):
    return costs.timed(phase) if costs is not None else nullcontext()


@dataclass
class BaseCache:
    """k base completions per prompt and their proxy rewards, drawn once per anchor version.

    A prompt's entry is drawn from a generator keyed by (seed, prompt, role, anchor version), whichever
    step first needs it. With several processes, the missing prompts of a step are split among them and
    the new entries exchanged, so every process holds the whole cache, the same as one process would,
    and each entry is drawn (and paid for) once.

    Entries are kept in CPU memory, whatever the policy's device (a step's entries are moved to it when
    used): the cache grows with the prompts visited, and the accelerator's memory would grow with it. An
    entry's k rows share one prompt, held once (:func:`_one_prompt_row`). A checkpoint holds them packed
    (:meth:`state`): a few flat tensors for all entries rather than six per entry, each prompt's token
    row once, integers in the narrowest type that holds them.
    """

    k: int
    entries: dict[tuple[str, str, int], tuple[Rollout, Tensor]] = field(default_factory=dict)

    def get(
        self,
        policy: Policy,
        role: Role,
        prompts: list[str],
        task: Task,
        streams: Streams,
        costs: Costs | None,
        shard: Shard | None = None,
    ) -> list[tuple[Rollout, Tensor]]:
        """The entries of this process's share of ``prompts`` (the step's global batch), on the policy's device."""
        version = policy.anchor_version if role == "anchor" else 0
        if role == "anchor":  # samples of an older anchor are never used again
            stale = [key for key in self.entries if key[1] == "anchor" and key[2] != version]
            for key in stale:
                del self.entries[key]
        missing = list(dict.fromkeys(p for p in prompts if (p, role, version) not in self.entries))
        mine = local_items(missing, shard)
        new: dict[tuple[str, str, int], tuple[Rollout, Tensor]] = {}
        if mine:
            gens = [streams.keyed("cache", role, version, p) for p in mine]
            fresh = sample(policy, mine, self.k, role, gens, costs)
            rewards = score(task, fresh, costs).cpu()
            fresh = fresh.to("cpu")
            for i, p in enumerate(mine):
                rows = list(range(i * self.k, (i + 1) * self.k))
                new[(p, role, version)] = (_one_prompt_row(fresh.select(rows)), rewards[rows])
        elif missing and getattr(policy, "sharded", False):
            # Sharded (FSDP) weights are gathered by every forward, a collective: a process with no
            # prompt of its own still takes part, with one completion that it discards.
            policy.sample(missing[:1], 1, role=role, generator=torch.Generator().manual_seed(0))
        if shard is not None and shard.world > 1 and missing:
            for part in shard.gather_objects(new):
                self.entries.update(part)
        else:
            self.entries.update(new)
        device = torch.device(policy.device)
        entries = [self.entries[(p, role, version)] for p in local_items(prompts, shard)]
        if device.type == "cpu":
            return entries
        return [(r.to(device), w.to(device)) for r, w in entries]

    def state(self) -> dict[str, Any]:
        """The entries packed (:func:`_packed`); :meth:`load` reads it, and the older ``entries`` form too."""
        return {"k": self.k, "packed": _packed(self.entries)}

    def load(self, state: dict[str, Any]) -> None:
        self.k = state["k"]
        if "packed" in state:
            self.entries = _unpacked(state["packed"])
        else:  # a checkpoint written before entries were packed: one Rollout per entry, maybe on a GPU
            self.entries = {key: (r.to("cpu"), w.cpu()) for key, (r, w) in state["entries"].items()}


def _one_prompt_row(roll: Rollout) -> Rollout:
    """The rollout with its prompt fields held once: every row a view of one row (a base-cache entry's k
    rows share a prompt and its padding, and held as k copies they took about half of an entry's tensors
    with a language model's prompts). A rollout whose rows differ is returned as it is."""
    shared = {}
    for name in ("prompt_ids", "prompt_mask"):
        t = getattr(roll, name)
        if len(t) > 1 and _rows_alike(t):
            shared[name] = t[:1].clone().expand_as(t)
    return replace(roll, **shared) if shared else roll


def _rows_alike(t: Tensor) -> bool:
    """Whether every row of ``t`` equals its first."""
    return torch.equal(t, t[:1].expand_as(t))


_PACKED = ("prompt_ids", "prompt_mask", "completion_ids", "response_mask", "sample_logp")


def _narrowest(x: Tensor) -> Tensor:
    """An integer tensor in the narrowest of uint8, int32 and its own type that holds its values."""
    if x.is_floating_point() or x.is_complex() or x.numel() == 0:
        return x
    lo, hi = int(x.min()), int(x.max())
    for dtype in (torch.uint8, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= lo and hi <= info.max and x.element_size() > info.bits // 8:
            return x.to(dtype)
    return x


def _packed(entries: dict[tuple[str, str, int], tuple[Rollout, Tensor]]) -> dict[str, Any]:
    """Base-cache entries as a few flat tensors (row-major, entry after entry) with each entry's shapes.

    A prompt field whose k rows are one row repeated (always: an entry's rows share a prompt and its
    padding) is stored once, with 1 as its row count. :func:`_unpacked` gives back equal rollouts: the
    same values, types, shapes and padding."""
    rolls = [r for r, _ in entries.values()]
    if any(r.weights is not None for r in rolls):
        raise ValueError("base-cache entries are sampled, never weighted")
    out: dict[str, Any] = {
        "keys": list(entries),
        "group_size": [r.group_size for r in rolls],
        "prompts": [r.prompts for r in rolls],
        "texts": [r.texts for r in rolls],
        "rewards": [w.cpu() for _, w in entries.values()],
    }
    for name in _PACKED:
        parts = [getattr(r, name) for r in rolls]
        if any(t is None for t in parts):
            if not all(t is None for t in parts):
                raise ValueError(f"base-cache entries hold {name} for some rows and not for others")
            out[name] = None
            continue
        if name.startswith("prompt_"):
            parts = [t[:1] if _rows_alike(t) else t for t in parts]
        parts = [t.cpu() for t in parts]
        flat = torch.cat([t.reshape(-1) for t in parts]) if parts else torch.zeros(0)
        out[name] = {
            "values": _narrowest(flat),
            "dtype": str(parts[0].dtype).removeprefix("torch.") if parts else "int64",
            "shapes": [tuple(t.shape) for t in parts],
        }
    out["rewards"] = torch.stack(out["rewards"]) if out["rewards"] else torch.zeros(0)
    return out


def _unpacked(packed: dict[str, Any]) -> dict[tuple[str, str, int], tuple[Rollout, Tensor]]:
    """The entries :func:`_packed` packed."""
    n = len(packed["keys"])
    fields_of: dict[str, list[Tensor | None]] = {}
    for name in _PACKED:
        spec = packed[name]
        if spec is None:
            fields_of[name] = [None] * n
            continue
        values = spec["values"].to(getattr(torch, spec["dtype"]))
        pieces = values.split([a * b for a, b in spec["shapes"]]) if n else []
        fields_of[name] = [v.view(shape) for v, shape in zip(pieces, spec["shapes"], strict=True)]
    entries = {}
    for i, key in enumerate(packed["keys"]):
        k = packed["group_size"][i]
        rows = len(packed["texts"][i])
        got = {name: fields_of[name][i] for name in _PACKED}
        for name in ("prompt_ids", "prompt_mask"):
            if got[name].shape[0] != rows:  # stored once: every row a view of it
                got[name] = got[name].expand(rows, -1)
        roll = Rollout(prompts=list(packed["prompts"][i]), texts=list(packed["texts"][i]), group_size=k, **got)
        entries[tuple(key)] = (roll, packed["rewards"][i])
    return entries


@dataclass
class StepData:
    """Everything collected for one step, without gradient: this process's share of the step's prompts
    (all of them in one process). Rows are prompt-major."""

    prompts: list[str]
    rollout: Rollout
    rewards: Tensor
    ref_logp: Tensor | None = None
    anchor_logp: Tensor | None = None
    ref_full_logprobs: Tensor | None = None
    quantiles: Tensor | None = None
    quantiles_lt: Tensor | None = None
    base_rewards: Tensor | None = None
    target: Rollout | None = None


def _best_rows(rewards: Tensor, generator: Generators) -> list[int]:
    """Flat row index of the best completion of each group of a [B, m] reward matrix (ties broken with
    ``generator``: one, or one per group)."""
    idx = best_of_n_select(rewards, generator=generator)
    m = rewards.shape[1]
    return [i * m + int(j) for i, j in enumerate(idx)]


@torch.no_grad()
def collect(
    needs: Needs,
    policy: Policy,
    task: Task,
    prompts: list[str],
    *,
    streams: Streams,
    cache: BaseCache | None,
    costs: Costs | None = None,
    shard: Shard | None = None,
) -> StepData:
    """Stage 1 of a step: everything the algorithm's loss reads except log π with gradient.

    ``prompts`` is the step's global batch; with a ``shard`` this process collects only its share
    ``prompts[rank::world]``. The prompt at global position i draws from ``streams`` keyed by i, one
    stream per kind of draw (``policy``, ``base``, ``target``), so its data is the same whichever
    process collects it and whatever else is in the batch.
    """
    pos = positions(len(prompts), shard)
    mine = [prompts[i] for i in pos]
    rollout = sample(policy, mine, needs.samples, "policy", streams.per_prompt("policy", pos), costs)
    data = StepData(prompts=mine, rollout=rollout, rewards=score(task, rollout, costs))
    with _timed(costs, "logprobs"):
        if needs.full_logprobs:
            data.ref_full_logprobs = policy.logprobs(rollout, role="ref", full=True)
            data.ref_logp = chosen_logprobs(data.ref_full_logprobs, rollout.completion_ids)
        elif needs.ref_logp:
            data.ref_logp = policy.logprobs(rollout, role="ref")
        if needs.anchor_logp:
            data.anchor_logp = policy.logprobs(rollout, role="anchor")

    fresh = None
    if needs.base_samples:
        fresh = sample(policy, mine, needs.base_samples, needs.base, streams.per_prompt("base", pos), costs)
        data.base_rewards = score(task, fresh, costs).view(len(mine), needs.base_samples)

    cached = None
    if needs.quantiles == "mc" or needs.target == "cache":
        if cache is None:
            raise ValueError("this algorithm needs a base cache")
        cached = cache.get(policy, needs.base, prompts, task, streams, costs, shard)

    if needs.quantiles == "exact":
        if task.oracle is None:
            raise ValueError("quantiles=exact needs a task with an exact oracle (task=exact); use quantiles=mc")
        with _timed(costs, "logprobs"):
            base_probs = task.oracle.probs(policy, needs.base)
        p_le, p_lt = task.oracle.quantiles(rollout, base_probs)
        data.quantiles, data.quantiles_lt = p_le.to(data.rewards.dtype), p_lt.to(data.rewards.dtype)
    elif needs.quantiles == "mc":
        ref_rewards = torch.stack([r for _, r in cached])  # [B, k]
        g = needs.samples
        own = data.rewards.view(len(mine), g)
        data.quantiles = quantile_estimate(own, ref_rewards).reshape(-1)
        data.quantiles_lt = quantile_estimate_strict(own, ref_rewards).reshape(-1)

    if needs.target == "fresh":
        data.target = fresh.select(_best_rows(data.base_rewards, streams.per_prompt("target", pos)), group_size=1)
    elif needs.target == "cache":
        picks = []
        for (roll, rew), gen in zip(cached, streams.per_prompt("target", pos), strict=True):
            draw = torch.randint(0, len(roll), (needs.target_n,), generator=gen)
            best = int(draw[int(best_of_n_select(rew[draw][None], generator=gen)[0])])
            picks.append(roll.select([best], group_size=1))
        data.target = concat_rollouts(picks)
    return data


def best_of_n_outputs(
    policy: Policy,
    task: Task,
    prompts: list[str],
    n: int,
    per_prompt: int,
    *,
    generator: Generators,
    costs: Costs | None,
) -> Rollout:
    """Best-of-N sampling (ALGORITHMS.md §7): ``per_prompt`` outputs per prompt, each the best of n
    reference samples by the proxy reward (ties broken uniformly). Costs n samples and n reward calls.
    With one generator per prompt, prompt i's tie-breaks use a generator seeded from generator i before
    its candidates are drawn (a generator's state after sampling may depend on the batch)."""
    ties = generator
    if generator is not None and not isinstance(generator, torch.Generator):
        own = [torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g))) for g in generator]
        ties = [g for g in own for _ in range(per_prompt)]  # a prompt's groups draw in turn from its generator
    cands = sample(policy, prompts, n * per_prompt, "ref", generator, costs)
    rewards = score(task, cands, costs).view(-1, n)
    return cands.select(_best_rows(rewards, ties), group_size=per_prompt)


def make_batch(
    needs: Needs, policy: Policy, data: StepData, groups: list[int] | None = None, shard: Shard | None = None
) -> Batch:
    """Stage 2: a :class:`Batch` for the given prompt groups (all when None), log π with gradient.

    ``shard``: how the global (mini)batch is split across processes, for losses that need batch-level
    statistics; every process must pass as many groups, its share of one global minibatch."""
    g = data.rollout.group_size
    all_groups = groups is None or len(groups) == data.rollout.num_groups
    rows = None if all_groups else torch.tensor([i * g + j for i in groups for j in range(g)])

    def pick(x: Tensor | None, by_group: bool = False) -> Tensor | None:
        if x is None or rows is None:
            return x
        return x[torch.tensor(groups)] if by_group else x[rows]

    rollout = data.rollout if rows is None else data.rollout.groups(groups)
    full = policy.logprobs(rollout, role="policy", full=True) if needs.full_logprobs else None
    if full is not None:
        logp = chosen_logprobs(full, rollout.completion_ids)
    else:
        logp = policy.logprobs(rollout, role="policy")
    target_logp = target_mask = None
    if data.target is not None:
        target = data.target if rows is None else data.target.select(groups, group_size=1)
        target_logp = policy.logprobs(target, role="policy")
        target_mask = target.response_mask
    old = rollout.sample_logp if rollout.sample_logp is not None else logp.detach()
    return Batch(
        group_size=g,
        response_mask=rollout.response_mask,
        logp=logp,
        old_logp=old,
        rewards=pick(data.rewards),
        ref_logp=pick(data.ref_logp),
        anchor_logp=pick(data.anchor_logp),
        full_logprobs=full,
        ref_full_logprobs=pick(data.ref_full_logprobs),
        quantiles=pick(data.quantiles),
        quantiles_lt=pick(data.quantiles_lt),
        base_rewards=pick(data.base_rewards, by_group=True),
        target_logp=target_logp,
        target_mask=target_mask,
        weights=rollout.weights,
        shard=shard,
    )
