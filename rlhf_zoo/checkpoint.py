"""What a checkpoint holds, and how a run saves and restores it.

A checkpoint is ``run_dir/checkpoint/`` (:meth:`rlhf_zoo.runlog.RunLog.save_checkpoint`, written
atomically): the trainable and anchor weights (``weights.safetensors``) and the training state
(``state.pt``):

==================  ==============================================================================
``step``            optimiser steps completed
``evaluated_step``  the step of the last evaluation written to ``metrics.jsonl`` (a resumed run first
                    redoes its step's evaluation if a failure interrupted it)
``optimizer``       AdamW's state (with FSDP: in the unsharded layout, so checkpoints move between
                    sharded and plain runs)
``scheduler``       the learning-rate schedule's position
``torch_rng``       torch's global CPU generator of every process, by rank (and ``cuda_rng``, the
                    generator of each process's own GPU, by rank); sampling does not use them (its
                    draws are keyed, :mod:`rlhf_zoo.rng`), but anything else drawing from them
                    (dropout, user code) continues as it would have. Every process seeds them alike,
                    but their draws drift apart (dropout on shares of other shapes), so each resumed
                    process restores its own rank's; a rank the checkpoint lacks (it was written by
                    fewer processes) takes rank 0's
``cache``           the base cache: k base completions per prompt and their rewards (§3), packed
                    (:meth:`rlhf_zoo.rollout.BaseCache.state`)
``costs``           completions, tokens, reward calls of training, summed over processes
``eval_costs``      the same for evaluation
``eval_reference``  the held-out reference completions' rewards (drawn once per run)
``train_acc``       training metrics accumulated since the last evaluation
``elapsed``         training seconds so far
==================  ==============================================================================

Every field is restored, so that on CPU a resumed run's ``metrics.jsonl`` and ``summary.json``
equal an uninterrupted run's. With several processes every process takes part in :func:`save`
(sharded weights and counters are gathered); only the main process writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch

from rlhf_zoo.rollout import Costs

if TYPE_CHECKING:
    from rlhf_zoo.evaluate import Evaluator
    from rlhf_zoo.policies.base import Policy
    from rlhf_zoo.rollout import BaseCache
    from rlhf_zoo.runlog import RunLog
    from rlhf_zoo.runtime import Runtime


class Run(Protocol):
    """What a checkpoint reads and restores of a run (:class:`rlhf_zoo.train.Trainer`)."""

    step: int
    evaluated_step: int | None
    saved_step: int | None  # the step of the checkpoint in the run directory (None: none yet)
    elapsed: float
    policy: Policy
    opt: torch.optim.Optimizer | None
    sched: torch.optim.lr_scheduler.LRScheduler | None
    cache: BaseCache | None
    costs: Costs
    evaluator: Evaluator
    train_acc: dict[str, list[float]]
    rt: Runtime
    log: RunLog


def training_state(tr: Run) -> dict[str, Any]:
    """The training state of ``tr`` (every process calls this: counters are summed over processes)."""
    rt = tr.rt
    return {
        "step": tr.step,
        "evaluated_step": tr.evaluated_step,
        "optimizer": rt.optimizer_state(tr.opt) if tr.opt else None,
        "scheduler": tr.sched.state_dict() if tr.sched else None,
        "torch_rng": _by_rank(rt, torch.get_rng_state()),
        "cuda_rng": _by_rank(rt, torch.cuda.get_rng_state(rt.device)) if rt.device.type == "cuda" else None,
        "cache": tr.cache.state() if tr.cache else None,
        "costs": _summed(rt, tr.costs),
        "eval_costs": _summed(rt, tr.evaluator.costs),
        "eval_reference": tr.evaluator.reference_state(),
        "train_acc": dict(tr.train_acc),
        "elapsed": tr.elapsed,
    }


def save(tr: Run) -> None:
    """Write ``tr``'s checkpoint; ``tr.saved_step`` then names it."""
    state = training_state(tr)
    # Every process holds the same weights; sharded ones are gathered by every process.
    weights = tr.policy.state_dict() if tr.rt.is_main or tr.rt.sharded else None
    if tr.rt.is_main:
        tr.log.save_checkpoint(weights, state)
        tr.saved_step = tr.step  # in place: named also if another process is lost before the barrier below
    tr.rt.barrier()
    tr.saved_step = tr.step


def restore(tr: Run) -> int:
    """Load the run directory's checkpoint into ``tr``; returns the step it continues from."""
    weights, s = tr.log.load_checkpoint(tr.rt.device)
    tr.policy.load_state_dict(weights)
    tr.step = s["step"]
    tr.evaluated_step = s.get("evaluated_step", tr.step)  # older checkpoints: written after their evaluation
    if tr.opt and s["optimizer"]:
        tr.rt.load_optimizer_state(tr.opt, s["optimizer"])
        tr.sched.load_state_dict(s["scheduler"])
    torch.set_rng_state(_own_rng(s["torch_rng"], tr.rt.rank))
    _restore_cuda_rng(_own_rng(s["cuda_rng"], tr.rt.rank), tr.rt.device)
    if tr.cache and s["cache"]:
        tr.cache.load(s["cache"])
    tr.costs = _own_share(tr.rt, s["costs"])
    tr.evaluator.costs = _own_share(tr.rt, s["eval_costs"])
    tr.evaluator.load_reference(s["eval_reference"])
    tr.train_acc.clear()
    tr.train_acc.update(s["train_acc"])
    tr.elapsed = s["elapsed"]
    if tr.rt.is_main:  # one writer: processes racing on the same temporary file could fail
        tr.log.truncate_metrics(tr.step)
    return tr.step


def _by_rank(rt: Any, state: torch.Tensor) -> dict[int, torch.Tensor]:
    """A generator state of every process, by rank (every process calls this; the states are CPU tensors)."""
    return dict(enumerate(rt.gather_objects(state)))


def _own_rng(states: Any, rank: int) -> Any:
    """This process's generator state of a checkpoint's ``{rank: state}``: its own rank's, or rank 0's where the
    checkpoint has none for it (written by fewer processes). Older checkpoints hold the main process's state
    alone (for the GPU: a list of every GPU's), which every process takes, as before."""
    if isinstance(states, dict):
        return states.get(rank, states[0])
    return states


def _restore_cuda_rng(state: Any, device: torch.device) -> None:
    """The saved GPU generator onto this process's GPU (``cuda:r`` for rank r), not every visible GPU's state
    as the main process saw them (rank 1's ``cuda:1`` got the main process's untouched copy of it). A run
    resumed on the CPU has no GPU generator to restore. Older checkpoints hold that list of every GPU's state;
    it is restored as it was before."""
    if state is None or device.type != "cuda":
        return
    if isinstance(state, list):
        torch.cuda.set_rng_state_all(state)
    else:
        torch.cuda.set_rng_state(state, device)


def _summed(rt: Any, costs: Costs) -> Costs:
    """The counters summed over processes (this process's timings)."""
    total = rt.sum_ints({"completions": costs.completions, "tokens": costs.tokens, "calls": costs.reward_calls})
    return Costs(total["completions"], total["tokens"], total["calls"], dict(costs.seconds))


def _own_share(rt: Any, costs: Costs) -> Costs:
    """Restored counters: the main process carries the checkpoint's totals, the others start at 0."""
    return costs if rt.is_main else Costs(seconds=dict(costs.seconds))
