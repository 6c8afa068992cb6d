"""Benchmark suites as data: which objectives, which knob sweeps, which seeds, which budget.

A :class:`Sweep` is one objective (an ``algo=`` name or preset plus fixed overrides) with one knob
swept. Each sweep's *shape* (its tag, objective, algorithm, knob, fixed overrides, frontier mode and
the paper claims it serves) is declared once, below (:data:`SWEEPS`); a :class:`Suite` picks the
values of each (``REINFORCE.over(0.01, 0.1)``), its task and training budget, the overrides it gives
an algorithm wherever it appears (``algo_args``: a batch size, a number of cached samples) and its
seeds. :func:`expand` turns a suite into :class:`Point` s, one per (sweep, value, seed): each is a
list of ``key=value`` overrides for ``rlhf-zoo train`` plus a label. Two sweeps that produce the
same configuration (e.g. BOND n = 4, β = 0.5 in both the n sweep and the β sweep) share one point,
which is run once and belongs to both.

The sweep *tags* are stable names that the claims (:mod:`rlhf_zoo.bench.claims`) look up, so every
suite uses the same ones; a sweep's ``claims`` names the claims that read it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rlhf_zoo.errors import UserError


@dataclass(frozen=True)
class Sweep:
    """One objective with one knob swept: its shape, declared once, and (in a suite) the knob's values.

    Attributes:
        tag: stable name of the sweep (the claims look it up); also the prefix of point ids.
        objective: display name, e.g. ``"REINFORCE (2 samples, leave-one-out)"``.
        algo: the ``algo=`` value: a registered algorithm or a preset of ``rlhf_zoo/configs/algo/``.
        knob: the dotted key swept, e.g. ``"algo.beta"``; ``""``: none (one configuration, ``values`` =
            ``("",)``: a command-line sweep over seeds or algorithms only, :mod:`rlhf_zoo.sweep`).
        values: the knob's values (empty in a shape; a suite picks them with :meth:`over`).
        fixed: overrides shared by every point of the sweep (after the suite's task arguments, before
            the suite's ``algo_args`` and the knob).
        knob_label: how tables name the knob (default: the key's last part).
        frontier: how the frontier table reads this objective: ``"sweep"`` (one curve through the
            final points over the knob's values), ``"paths"`` (one curve per value: its training
            path) or ``"none"``.
        claims: the keys of the paper claims that read this sweep (documentation, checked by a test).
    """

    tag: str
    objective: str
    algo: str
    knob: str
    values: tuple[Any, ...] = ()
    fixed: tuple[str, ...] = ()
    knob_label: str = ""
    frontier: str = "sweep"
    claims: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", self.tag):
            raise ValueError(f"sweep tag must be lower-case letters, digits and _: {self.tag!r}")
        if self.frontier not in ("sweep", "paths", "none"):
            raise ValueError(f"frontier must be sweep, paths or none, got {self.frontier!r}")

    def over(self, *values: Any, objective: str | None = None, frontier: str | None = None) -> Sweep:
        """This sweep at ``values``; a suite may rename the objective (to say what its settings are)
        or read the frontier differently."""
        return replace(self, values=values, objective=objective or self.objective, frontier=frontier or self.frontier)

    @property
    def label(self) -> str:
        return self.knob_label or self.knob.rsplit(".", 1)[-1]

    def args(self, value: Any, settings: tuple[str, ...] = ()) -> list[str]:
        """The sweep's own overrides for one value, with a suite's ``settings`` for its algorithm after
        the fixed ones (no suite task arguments, no seed)."""
        knob = [f"{self.knob}={format_value(value)}"] if self.knob else []
        return [f"algo={self.algo}", *self.fixed, *settings, *knob]

    def setting(self, value: Any) -> str:
        """How a point's label names its value, e.g. ``beta_RL=0.1`` (empty without a knob)."""
        return f"{self.label}={format_value(value)}" if self.knob else ""


@dataclass(frozen=True)
class Suite:
    """A benchmark: sweeps × seeds on one task with one budget.

    Attributes:
        name: the suite's name (``rlhf-zoo bench suite=NAME``).
        description: one paragraph for the rendered page.
        task_args: overrides shared by every point (task, model, training budget, threads).
        sweeps: the objectives and their knob sweeps (each with its values).
        seeds: the default seeds (``seeds=`` on the command line replaces them).
        budget: the intended wall-clock budget, in words.
        jobs: points run in parallel processes (1 = in this process).
        resumable: a point interrupted mid-way continues from its checkpoint (``resume=true``)
            instead of being deleted and redone (language-model suites, where a run is minutes).
        kl_budgets: KL(π‖π_ref) values (nats) at which the frontier table compares objectives.
        exact: the task has an exact oracle (exact KLs, the optimal frontier).
        algo_args: overrides this suite gives an algorithm (an ``algo=`` value) in every sweep of it,
            after the sweep's fixed ones (e.g. a larger batch on the testbed).
        bon_pool: M > 0: the ``best_of_n`` sweep is one *pool* point per seed, M reference samples per
            held-out prompt from which every n ≤ M is read (:mod:`rlhf_zoo.evaluate_pool`); its values
            are the n that tables show. 0: one trained-style evaluation per n (the exact suite, whose
            oracle gives exact curves anyway).
    """

    name: str
    description: str
    task_args: tuple[str, ...]
    sweeps: tuple[Sweep, ...]
    seeds: tuple[int, ...]
    budget: str
    jobs: int = 1
    resumable: bool = False
    kl_budgets: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    exact: bool = False
    algo_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bon_pool: int = 0

    def __post_init__(self) -> None:
        tags = [s.tag for s in self.sweeps]
        twice = next((j for j, tag in enumerate(tags) if tag in tags[:j]), None)
        if twice is not None:  # said "a sweep tag appears twice: ['r', 'r', ...]", naming neither sweep
            first = tags.index(tags[twice])
            raise ValueError(
                f"suite {self.name}: sweeps[{twice}] has the tag {tags[twice]!r} of sweeps[{first}]: give each sweep "
                "its own tag (its records and the page's rows are named by it)"
            )
        for s in self.sweeps:
            if not s.values:
                raise ValueError(f"suite {self.name}: sweep {s.tag} has no values")
            if self.bon_pool and s.tag == "best_of_n" and max(s.values) > self.bon_pool:
                raise ValueError(f"suite {self.name}: Best-of-n up to {max(s.values)} needs bon_pool ≥ that")

    def sweep(self, tag: str) -> Sweep:
        for s in self.sweeps:
            if s.tag == tag:
                return s
        raise KeyError(f"suite {self.name} has no sweep {tag!r}")


@dataclass(frozen=True)
class Point:
    """One run of a suite: overrides for ``rlhf-zoo train`` (no ``run_dir``) and what it belongs to.

    Attributes:
        suite: the suite's name.
        id: the run's directory name under ``<out>/<suite>/``.
        label: human-readable, e.g. ``"REINFORCE (…) beta=0.01, seed 0"``.
        seed: the run seed.
        args: every override, in order: suite, sweep, extra (command line), seed.
        memberships: one dict per sweep the point belongs to: sweep tag, objective, knob, knob
            label, value, frontier mode and the sweep's position in the suite; a pool point's also
            holds ``pool`` (M) and ``values`` (the n its record expands into).
        pool: M > 0 for a Best-of-N pool point (evaluated, not trained: :mod:`rlhf_zoo.evaluate_pool`).
    """

    suite: str
    id: str
    label: str
    seed: int
    args: tuple[str, ...]
    memberships: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    pool: int = 0


def first_repeated(items: Any) -> Any | None:
    """The first item that an earlier one equals (None: each item once): a seed, budget or swept value listed
    twice is refused by the bench, the suite files and the sweeps alike."""
    seen: list[Any] = []
    for x in items:
        if x in seen:
            return x
        seen.append(x)
    return None


def one_value_twice(written: list[str], values: list[Any]) -> tuple[str, str] | None:
    """The first two items, written differently, that are one value (``1`` and ``1.0``), or None: two points
    and two run folders, but one place on the page (and one configuration to ``compare``), which then refuses
    their two records of one seed. The suite files and the sweeps refuse them alike."""
    same = first_repeated(values)
    if same is None:
        return None
    a, b = [written[i] for i, v in enumerate(values) if v == same][:2]
    return a, b


def format_value(v: Any) -> str:
    """A value (from Python or YAML) as written on the command line: floats without trailing noise,
    ``null``, and lists and mappings in YAML's flow style (``["q_proj", "v_proj"]``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if v is None:
        return "null"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(list(v) if isinstance(v, tuple) else v)
    return str(v)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")


def _canonical(args: list[str]) -> tuple[tuple[str, str], ...]:
    """The configuration's identity: overrides as a sorted key → value map (later keys win)."""
    out: dict[str, str] = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k.strip()] = v
    return tuple(sorted(out.items()))


def expand(
    suite: Suite,
    seeds: list[int] | tuple[int, ...] | None = None,
    extra: list[str] | None = None,
    only: list[str] | None = None,
) -> list[Point]:
    """The suite's points, seed-major: every configuration of one seed (sweeps in the suite's order, each sweep's
    values as it lists them) before the next seed's, the seeds in the order given (``seeds=2,0`` runs seed 2 first).

    Args:
        seeds: replaces the suite's seeds.
        extra: overrides appended to every point (they win over the suite's and the sweep's).
        only: keep only these sweep tags.
    """
    seeds = _checked_seeds(suite.seeds if seeds is None else seeds)
    extra = _checked_extra(extra)
    sweeps = _selected(suite, only)
    points = [p for seed in seeds for p in _seed_points(suite, sweeps, extra, seed)]
    selected = {s.tag for s in sweeps}
    points = [p for p in points if any(m["sweep"] in selected for m in p.memberships)]
    first: dict[str, Point] = {}
    for p in points:  # an id names the point's run folder and record: values that differ only in punctuation
        other = first.setdefault(p.id, p)
        if other is not p:
            raise UserError(
                f"suite {suite.name}: {other.label!r} and {p.label!r} would share the run folder {p.id!r} "
                "(their values differ only in punctuation): rename one"
            )
    return points


def _checked_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """The seeds to run, refused when empty or when one is listed twice (as a sweep refuses a value twice)."""
    seeds = tuple(seeds)
    if not seeds:
        raise UserError("no seeds to run")
    twice = [s for i, s in enumerate(seeds) if s in seeds[:i]]
    if twice:
        raise UserError(f"seeds {','.join(map(str, seeds))} name seed {twice[0]} twice")
    return seeds


def _checked_extra(extra: list[str] | None) -> list[str]:
    """Every point's extra overrides; each must be ``key=value`` of a key a point does not own."""
    extra = list(extra or [])
    for a in extra:
        if "=" not in a or a.split("=", 1)[0].strip() in ("seed", "run_dir", "resume", "algo"):
            raise UserError(f"bench: cannot override {a!r} for every point")
    return extra


def _selected(suite: Suite, only: list[str] | None) -> list[Sweep]:
    """The suite's sweeps that ``only`` names (all when it names none); an unknown tag is refused."""
    sweeps = list(suite.sweeps)
    if not only:
        return sweeps
    unknown = sorted(set(only) - {s.tag for s in sweeps})
    if unknown:
        raise UserError(
            f"suite {suite.name} has no sweep {', '.join(unknown)}; known: {', '.join(s.tag for s in sweeps)}"
        )
    return [s for s in sweeps if s.tag in only]


def _seed_points(suite: Suite, sweeps: list[Sweep], extra: list[str], seed: int) -> list[Point]:
    """One seed's points, sweeps in the suite's order: every sweep's values, then (by the caller) the selected
    ones' points. A configuration two sweeps share is one point that is a member of both, so that a point shared
    with an unselected sweep keeps its id and its memberships (``only=`` neither reruns it under another id nor
    records it as one sweep's only)."""
    points: list[Point] = []
    by_identity: dict[tuple[tuple[str, str], ...], int] = {}
    for order, sweep in enumerate(suite.sweeps):
        if suite.bon_pool and sweep.tag == "best_of_n":
            if sweep in sweeps:
                points.append(_pool_point(suite, sweep, order, extra, seed))
            continue
        for value in sweep.values:
            settings = tuple(suite.algo_args.get(sweep.algo, ()))
            args = [*suite.task_args, *sweep.args(value, settings), *extra, f"seed={seed}"]
            member = {
                "sweep": sweep.tag,
                "objective": sweep.objective,
                "knob": sweep.knob,
                "knob_label": sweep.label,
                "value": value,
                "frontier": sweep.frontier,
                "order": order,
            }
            ident = _canonical(args)
            if ident in by_identity:  # the same configuration from another sweep: run once
                i = by_identity[ident]
                p = points[i]
                points[i] = Point(p.suite, p.id, p.label, p.seed, p.args, (*p.memberships, member))
                continue
            by_identity[ident] = len(points)
            pid = _slug(f"{sweep.tag}-{sweep.label}{format_value(value)}-s{seed}")
            label = f"{sweep.objective} {sweep.setting(value)}".rstrip() + f", seed {seed}"
            points.append(Point(suite.name, pid, label, seed, tuple(args), (member,)))
    return points


def _pool_point(suite: Suite, sweep: Sweep, order: int, extra: list[str], seed: int) -> Point:
    """One seed's Best-of-N pool: M reference samples per held-out prompt, every n read from them."""
    m = suite.bon_pool
    args = [*suite.task_args, f"algo={sweep.algo}", *sweep.fixed, *extra, f"seed={seed}"]
    member = {
        "sweep": sweep.tag,
        "objective": sweep.objective,
        "knob": sweep.knob,
        "knob_label": sweep.label,
        "value": m,
        "values": list(sweep.values),
        "pool": m,
        "frontier": sweep.frontier,
        "order": order,
    }
    label = f"{sweep.objective} from a pool of {m} reference samples per prompt, seed {seed}"
    return Point(suite.name, f"{sweep.tag}-pool{m}-s{seed}", label, seed, tuple(args), (member,), pool=m)


# -------------------------------------------------------------------------------------------------
# The sweeps, declared once: what each varies and which claim it serves. A suite picks the values.
# -------------------------------------------------------------------------------------------------

BEST_OF_N = Sweep("best_of_n", "Best-of-N", "best_of_n", "algo.n", claims=("e1", "e2"))
REINFORCE = Sweep(
    "reinforce",
    "REINFORCE (2 samples, leave-one-out)",
    "reinforce",
    "algo.beta",
    fixed=("algo.samples=2", "algo.baseline=loo"),
    knob_label="beta_RL",
    claims=("d",),
)
PPO_LITE = Sweep("ppo_lite", "PPO-lite (4 samples, loo)", "ppo_lite", "algo.beta", knob_label="beta_RL")
# n = 2 is the fixed-n reference of claim (b)
BOND = Sweep("bond", "BOND (Jeffreys β=0.5)", "bond", "algo.n", fixed=("algo.beta=0.5",), claims=("b",))
BOND_BETA = Sweep(
    "bond_beta",
    "BOND n=4 over Jeffreys β",
    "bond",
    "algo.beta",
    fixed=("algo.n=4",),
    frontier="none",
    claims=("a",),
)
ITERATIVE = Sweep(
    "iterative",
    "iterative BOND (n=2)",
    "iterative_bond",
    "algo.anchor_period",
    knob_label="swap_period",
    frontier="paths",
    claims=("b",),
)
# γ = 0 is the default J-BOND of claim (d)
JBOND_GAMMA = Sweep(
    "jbond_gamma",
    "J-BOND (EMA η=0.02) over γ",
    "jbond",
    "algo.gamma",
    fixed=("algo.eta=0.02",),
    frontier="paths",
    claims=("c2", "d"),
)
# claim (c1) pairs each swap period M of jbond_swap with the EMA rate η ≈ 1/M of jbond_eta
JBOND_ETA = Sweep(
    "jbond_eta",
    "J-BOND (γ=0) over EMA η",
    "jbond",
    "algo.eta",
    fixed=("algo.gamma=0.0",),
    frontier="paths",
    claims=("c1",),
)
JBOND_SWAP = Sweep(
    "jbond_swap",
    "J-BOND (γ=0) with hard anchor swaps",
    "jbond",
    "algo.swap_period",
    fixed=("algo.gamma=0.0",),
    knob_label="swap_period",
    frontier="paths",
    claims=("c1",),
)
SWEEPS: tuple[Sweep, ...] = (
    BEST_OF_N,
    REINFORCE,
    PPO_LITE,
    BOND,
    BOND_BETA,
    ITERATIVE,
    JBOND_GAMMA,
    JBOND_ETA,
    JBOND_SWAP,
)

# -------------------------------------------------------------------------------------------------
# The suites: values, budget, seeds
# -------------------------------------------------------------------------------------------------

BETAS_RL = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)

EXACT = Suite(
    name="exact",
    description=(
        "The exactly solvable testbed (`task=exact`: 4 prompts, 121 completions each, a random tabular "
        "π_ref, a continuous proxy reward and a gold reward that differs from it by noise). Every "
        "quantity is computed exactly by enumeration, so the only randomness is in training (the seed "
        "drives sampling). Every objective trains for the same number of steps with the testbed's "
        "default learning rate (0.1, cosine) and batch; each knob that trades reward for KL is swept."
    ),
    task_args=("task=exact", "threads=1", "train.steps=300", "train.eval_every=15", "train.progress=false"),
    algo_args={algo: ("train.batch_prompts=32",) for algo in ("reinforce", "ppo_lite", "bond", "iterative_bond")},
    sweeps=(
        BEST_OF_N.over(1, 2, 4, 8, 16, 32),
        REINFORCE.over(*BETAS_RL),
        PPO_LITE.over(0.1, 0.3, 1.0, objective="PPO-lite (4 samples, loo, 2 epochs × 2 minibatches)"),
        BOND.over(2, 4, 8, 16, objective="BOND (Jeffreys β=0.5, 4 samples, exact quantiles)"),
        BOND_BETA.over(0.0, 0.5, 1.0),
        ITERATIVE.over(50, 100),
        JBOND_GAMMA.over(0.0, 0.5, 1.0, 2.0),
        JBOND_ETA.over(0.02, 0.05, 0.2, frontier="sweep"),
        JBOND_SWAP.over(20, 50),
    ),
    seeds=(0, 1, 2, 3, 4),
    budget="under 5 minutes on 2 CPU cores (2 processes, 1 thread each)",
    jobs=2,
    kl_budgets=(0.25, 0.5, 1.0, 2.0, 3.0),
    exact=True,
)

# The language-model suites on zoo-lm (rlhf_zoo.policies.zoo_lm): full fine-tuning (the model is small
# enough that it costs about what LoRA does and moves further per step), 24 new tokens, a constant
# learning rate after a short warm-up, and Best-of-N read from one pool of reference samples per
# held-out prompt (rlhf_zoo.evaluate_pool). One torch thread per process: the suites run 2 processes on
# 2 cores, and 2 threads each (torch's default) made every point about 3x slower (measured: a REINFORCE
# point trained in 155 s beside another process, 36 s with one thread each).
ZOO_LM_ARGS = (
    "task=sentiment",
    "model.name=zoo-lm",
    "model.finetune=full",
    "model.max_new_tokens=24",
    "threads=1",
    "train.lr_schedule=constant",
    "train.warmup_steps=5",
    "train.batch_prompts=8",
    "train.eval_prompts=32",
    "train.eval_samples=2",
    "train.eval_ref_samples=8",
    "train.checkpoint_minutes=2",
)

# The learning rate of each objective on zoo-lm, from pilots (the QUICK description gives them).
ZOO_LM_RATES = {
    "reinforce": "train.lr=1e-4",
    "ppo_lite": "train.lr=1e-4",
    "bond": "train.lr=3e-4",
    "iterative_bond": "train.lr=3e-4",
    "jbond": "train.lr=5e-4",
}


def zoo_lm_algo_args(k: int, algos: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per-objective settings of a zoo-lm suite: BOND's and iterative BOND's ``k`` cached reference
    samples, then the objective's learning rate (:data:`ZOO_LM_RATES`)."""
    return {a: ((f"algo.k={k}",) if a in ("bond", "iterative_bond") else ()) + (ZOO_LM_RATES[a],) for a in algos}


QUICK = Suite(
    name="quick",
    description=(
        "Movie-review continuation (`task=sentiment`) with `zoo-lm` (a 5 M-parameter Llama pretrained here on "
        "human-written text, `rlhf-zoo prepare`), fully fine-tuned: proxy reward VADER, gold reward the MiniLM "
        "regressor of human ratings. Every objective with its trade-off knob at three values (iterative BOND's "
        "swap period and J-BOND's swap schedule at two), 3 seeds, 60 steps of 8 prompts, 24 new tokens, one "
        "torch thread per process. Learning rate 1e-4 for REINFORCE and PPO-lite, 3e-4 for BOND and iterative "
        "BOND, 5e-4 for J-BOND (constant after 5 warm-up steps; from pilots: at 1e-3 REINFORCE with β = 0.003 "
        "passed KL 40 in 20 steps, at 1e-4 it reached KL 1.4 in 40; J-BOND at 3e-4 ended near KL 1.3-1.7, at "
        "5e-4 near 3). BOND and iterative BOND estimate quantiles against k = 8 cached reference samples per "
        "prompt (the paper trains with 16; 8 keeps the suite within its budget). KLs are exact-token estimates "
        "on sampled completions, evaluated on 32 held-out prompts × 2 samples every 20 steps. Best-of-N is read "
        "for every n = 1…64 from one pool of 64 reference samples per held-out prompt and seed (the "
        "order-statistic estimator, ALGORITHMS.md §7). Points shared by two sweeps (BOND n = 4 at β = 0.5; "
        "J-BOND γ = 0 at η = 0.02) run once."
    ),
    task_args=(*ZOO_LM_ARGS, "train.steps=60", "train.eval_every=20"),
    algo_args=zoo_lm_algo_args(8, ("reinforce", "ppo_lite", "bond", "iterative_bond", "jbond")),
    sweeps=(
        BEST_OF_N.over(1, 2, 4, 8, 16, 32, 64),
        REINFORCE.over(0.003, 0.03, 0.3),
        PPO_LITE.over(0.003, 0.03, 0.3, objective="PPO-lite (4 samples, loo, 1 epoch)"),
        BOND.over(2, 4, 16, objective="BOND (Jeffreys β=0.5, k=8 cached samples)"),
        BOND_BETA.over(0.0, 0.5, 1.0),
        ITERATIVE.over(10, 20),
        JBOND_GAMMA.over(0.0, 0.5, 1.0),
        JBOND_ETA.over(0.02, 0.05, 0.1, frontier="sweep"),
        JBOND_SWAP.over(10, 20),
    ),
    seeds=(0, 1, 2),
    budget=(
        "at most 40 minutes on 2 CPU cores with 2 processes of one thread: measured 2381 s (39.7 minutes) for all "
        "63 points on 2026-12-04 (per point: the pool 30-36 s, REINFORCE 45-56 s, J-BOND 56-72 s, BOND and "
        "iterative BOND 84-99 s, PPO-lite 92-111 s)"
    ),
    jobs=2,
    resumable=True,
    kl_budgets=(0.25, 0.5, 1.0, 2.0),
    bon_pool=64,
)

DEMO = Suite(
    name="demo",
    description=(
        "The five objectives side by side on `zoo-lm` (the first command of the README, `make run`): "
        "movie-review continuation, proxy reward VADER, gold reward the MiniLM regressor of human ratings, "
        "one seed, 60 steps of 8 prompts, full fine-tuning at `quick`'s learning rates. Best-of-N over "
        "n = 1…32 from one pool of 32 reference samples per held-out prompt. A demonstration, not evidence: "
        "`quick` has the seeds."
    ),
    task_args=(*ZOO_LM_ARGS, "train.steps=60", "train.eval_every=20", "train.eval_prompts=16"),
    algo_args=zoo_lm_algo_args(8, ("reinforce", "ppo_lite", "bond", "jbond")),
    sweeps=(
        BEST_OF_N.over(1, 2, 4, 8, 16, 32),
        REINFORCE.over(0.003, 0.03),
        PPO_LITE.over(0.03, objective="PPO-lite (4 samples, loo)"),
        BOND.over(4, 16, objective="BOND (Jeffreys β=0.5, k=8 cached samples)"),
        JBOND_GAMMA.over(0.0, objective="J-BOND (EMA η=0.02)"),
    ),
    seeds=(0,),
    budget=(
        "at most 6 minutes on 2 CPU cores once `rlhf-zoo prepare` has built the models: `make run` took 248 s "
        "(the bench 239 s) with the builds cached, on 2026-12-04"
    ),
    jobs=2,
    resumable=True,
    kl_budgets=(0.25, 0.5, 1.0, 2.0),
    bon_pool=32,
)

# The GPU suites on SmolLM2-135M-Instruct, fully fine-tuned (benchmarks/gpu/run.py runs them, with the
# throughput page, in slices of at most 10 minutes; docs/gpu.md). Weights stay float32: with bfloat16
# weights AdamW at these learning rates changes almost nothing (an update of 1e-5 is below half the
# spacing of bfloat16 numbers near a weight of 0.04; 92 % of such weights were unchanged after 10 steps at
# lr 1e-5, measured here), and on a GPU this model is bound by kernel launches, not by arithmetic, so float32
# costs little. The throughput page times bfloat16 (speed only).
SMOLLM2_FULL_ARGS = (
    "task=sentiment",
    "model.name=smollm2-135m",
    "model.finetune=full",
    "model.dtype=float32",
    "model.max_new_tokens=32",
    "device=cuda",
    "threads=2",
    "train.batch_prompts=32",
    "train.lr=2e-5",
    "train.lr_schedule=constant",
    "train.warmup_steps=5",
    "train.eval_samples=2",
    "train.eval_ref_samples=8",
    "train.checkpoint_every=0",
    "train.checkpoint_minutes=3",
)

FULL = Suite(
    name="full",
    description=(
        "The `quick` comparison at GPU scale: SmolLM2-135M-Instruct, fully fine-tuned (float32 weights), on "
        "movie-review continuation (`task=sentiment`: proxy reward VADER, gold reward the MiniLM regressor of "
        "human ratings), 80 steps of 32 prompts, 32 new tokens, learning rate 2e-5 (constant after 5 warm-up "
        "steps), k = 16 cached reference samples for BOND, 3 seeds. Evaluated on 128 held-out prompts × 2 "
        "samples every 40 steps; Best-of-N for every n = 1…64 from one pool of 64 reference samples per "
        "held-out prompt and seed. Every claim's sweep at the fewest values that test it (PPO-lite, which no "
        "claim reads, is left to the throughput page)."
    ),
    task_args=(*SMOLLM2_FULL_ARGS, "train.steps=80", "train.eval_every=40", "train.eval_prompts=128"),
    algo_args={"bond": ("algo.k=16",), "iterative_bond": ("algo.k=16",)},
    sweeps=(
        BEST_OF_N.over(1, 2, 4, 8, 16, 32, 64),
        REINFORCE.over(0.01, 0.1, 1.0),
        BOND.over(2, 4, 16, objective="BOND (Jeffreys β=0.5, k=16 cached samples)"),
        BOND_BETA.over(0.0, 0.5, 1.0),
        ITERATIVE.over(20),
        JBOND_GAMMA.over(0.0, 1.0),
        JBOND_ETA.over(0.02, frontier="sweep"),
        JBOND_SWAP.over(50),
    ),
    seeds=(0, 1, 2),
    budget=(
        "about 40 minutes on one H100, by estimate (not yet measured): 12 trained points and 1 pool per seed, 3 "
        "seeds, 4 processes sharing the GPU. A SmolLM2-135M step is bound by kernel launches: about 25 ms per "
        "new token in eager generation whatever the batch (30 layers), so one sampling call of 32 tokens is "
        "about 0.9 s, and the update of 32 × 2 sequences about 0.2 s. REINFORCE (one sampling call per step): "
        "80 × 1.1 s + 3 evaluations × 4 s + 10 s loading ≈ 110 s; BOND, iterative BOND and J-BOND (two sampling "
        "calls: policy and reference or anchor samples) 80 × 2.0 s + 22 s ≈ 180 s; the pool ≈ 30 s. Per seed "
        "3 × 110 + 9 × 180 + 30 ≈ 2,000 s, 6,000 s for 3 seeds, ≈ 36 minutes at 2.8× from 4 processes (launch-"
        "bound work interleaves on one GPU), plus ≈ 3 minutes of throughput page and ≈ 1 of staging"
    ),
    jobs=4,
    resumable=True,
    kl_budgets=(0.5, 1.0, 2.0, 4.0),
    bon_pool=64,
)

GPU_CHECK = Suite(
    name="gpu-check",
    description=(
        "A check of the GPU path in a few minutes, not evidence: `full`'s settings with 20 steps, one seed, "
        "64 held-out prompts, and one point of REINFORCE, BOND, J-BOND and the Best-of-N pool."
    ),
    task_args=(*SMOLLM2_FULL_ARGS, "train.steps=20", "train.eval_every=10", "train.eval_prompts=64"),
    algo_args={"bond": ("algo.k=16",)},
    sweeps=(
        BEST_OF_N.over(1, 2, 4, 8, 16),
        REINFORCE.over(0.1),
        BOND.over(4, objective="BOND (Jeffreys β=0.5, k=16 cached samples)"),
        JBOND_GAMMA.over(0.0),
    ),
    seeds=(0,),
    budget=(
        "about 1.5 minutes on one H100 by the arithmetic of `full` (20 steps: REINFORCE ≈ 40 s, BOND and J-BOND "
        "≈ 60 s each, the pool ≈ 20 s, in 4 processes); with the throughput page and the staging about 8 "
        "minutes of a session's device time"
    ),
    jobs=4,
    resumable=True,
    kl_budgets=(0.25, 0.5, 1.0),
    bon_pool=16,
)

# The same verdicts on SmolLM2-135M-Instruct with LoRA on 2 CPU cores (hours: run it in pieces; its records
# accumulate in docs/benchmarks/records/lm/, and a finished point is never run again).
LM = Suite(
    name="lm",
    description=(
        "Claims (c2) and (d) and the Best-of-N curve on SmolLM2-135M-Instruct with LoRA (r = 8, every linear layer "
        "of each block) on movie-review continuation (`task=sentiment`: proxy reward VADER, gold reward the MiniLM "
        "regressor of human ratings): J-BOND against REINFORCE (2 samples, leave-one-out) over β_RL, J-BOND over "
        "γ, and Best-of-N for every n = 1…32 from one pool of 32 reference samples per held-out prompt, 5 seeds. "
        "80 steps of 8 prompts, 24 new tokens, learning rate 5e-4 for REINFORCE and 2e-3 for J-BOND (constant "
        "after 5 warm-up steps; from seed 0 at 5e-4, where REINFORCE with β_RL = 0.01 reached KL 19 and J-BOND "
        "only 0.15-0.22 in 80 steps, and a J-BOND pilot at 2e-3 that reached KL 0.72 in 20), evaluated on 32 "
        "held-out prompts × 2 samples every 20 steps; 2 processes of one torch thread each."
    ),
    task_args=(
        "task=sentiment",
        "model.name=smollm2-135m",
        "model.finetune=lora",
        "model.max_new_tokens=24",
        "threads=1",
        "train.lr=5e-4",
        "train.lr_schedule=constant",
        "train.warmup_steps=5",
        "train.batch_prompts=8",
        "train.steps=80",
        "train.eval_every=20",
        "train.eval_prompts=32",
        "train.eval_samples=2",
        "train.eval_ref_samples=8",
        "train.checkpoint_minutes=5",
    ),
    sweeps=(
        BEST_OF_N.over(1, 2, 4, 8, 16, 32),
        REINFORCE.over(0.03, 0.1, 0.3),
        JBOND_GAMMA.over(0.0, 0.5, 1.0),
    ),
    # the task's train.lr=5e-4 stays first in every point's arguments (so that seed 0's records of the pool and
    # of REINFORCE stay valid); J-BOND's comes after it and wins
    algo_args={"jbond": ("train.lr=2e-3",)},
    seeds=(0, 1, 2, 3, 4),
    budget=(
        "about an hour per seed on 2 CPU cores with 2 processes of one core each (measured 2026-12-04: seed 2's "
        "7 points in 3679 s on a quiet machine, the pool 144 s, REINFORCE 981-1020 s and J-BOND at 2e-3 "
        "1251-1282 s per point; seed 3's in 4216 s, seed 4's in 4119 s (2026-12-05) and 11 points of seeds 0 "
        "and 1 in 7767 s, with tests or reviews running beside them); meant to be run in pieces (`seeds=3`, "
        "`only=jbond_gamma`) and continued"
    ),
    jobs=2,
    resumable=True,
    kl_budgets=(0.1, 0.25, 0.5, 1.0),
    bon_pool=32,
)

SUITES: dict[str, Suite] = {s.name: s for s in (EXACT, QUICK, LM, FULL, DEMO, GPU_CHECK)}


__all__ = [
    "DEMO",
    "EXACT",
    "FULL",
    "GPU_CHECK",
    "LM",
    "Point",
    "QUICK",
    "SMOLLM2_FULL_ARGS",
    "SUITES",
    "SWEEPS",
    "Suite",
    "Sweep",
    "ZOO_LM_ARGS",
    "expand",
    "format_value",
    "one_value_twice",
]
