"""What every claim shares: the :class:`Claim` interface, the :class:`Check` it returns, the evidence
types a check hands to its plot panel (:class:`Estimate`, :class:`Band`), and small helpers.

A claim's check reads the grouped records of one suite and puts the numbers it decided on into
``Check.data`` (its *evidence*, a dataclass of the claim's own module); the claim's plot panel draws
that evidence and nothing else, so the figure shows exactly what the verdict read.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rlhf_zoo.bench.records import Group
from rlhf_zoo.bench.stats import diff_ci, interp_path, mean_ci

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"

Groups = dict[str, dict[Any, Group]]
TrainingPath = list[tuple[float, ...]]  # a seed-mean training path: (step, KL(π‖π_ref), reward) per evaluation


@dataclass(frozen=True)
class Check:
    """The outcome of one claim on one suite.

    Attributes:
        status: ``reproduced``, ``not reproduced`` or ``not run``.
        numbers: the metric and the numbers, as text (the verdict table's cell).
        data: the evidence the verdict read (the claim's own dataclass); None when not run.
    """

    status: str
    numbers: str
    data: Any = None


@dataclass(frozen=True)
class Estimate:
    """A quantity over seeds: the values, their mean and the half-width of the two-sided 95 % Student-t
    interval (None below two finite values, see :func:`rlhf_zoo.bench.stats.mean_ci`)."""

    values: tuple[float, ...]
    mean: float
    half: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Estimate:
        vals = tuple(values)
        m, h, _ = mean_ci(vals)
        return cls(vals, m, h)

    @property
    def error(self) -> float:
        """The half-width for an error bar (0 where there is no interval)."""
        return 0.0 if self.half is None or not math.isfinite(self.half) else self.half

    def text(self, digits: int = 3) -> str:
        """``mean ± half`` (just the mean without an interval; ``—`` for NaN)."""
        return fmt(self.mean, digits) + (
            "" if self.half is None or not math.isfinite(self.mean) else f" ± {self.half:.{digits}f}"
        )


@dataclass(frozen=True)
class Band:
    """A metric over training: at each evaluation step that every seed reached, its :class:`Estimate`."""

    steps: tuple[float, ...]
    estimates: tuple[Estimate, ...]

    @classmethod
    def of(cls, group: Group, key: str) -> Band:
        per_seed = [{p[0]: p[1] for p in path} for path in group.paths(key)]
        steps = sorted(set.intersection(*(set(d) for d in per_seed))) if per_seed else []
        return cls(tuple(steps), tuple(Estimate.of([d[s] for d in per_seed]) for s in steps))


class Claim(ABC):
    """One claim of the BOND paper: its statement, its check on a suite's records, its plot panel.

    Subclasses set the class attributes and implement :meth:`check` (whose ``Check.data`` is the
    evidence) and :meth:`draw` (which draws that evidence on one matplotlib axes).

    Attributes:
        key: short name in the verdict table and the figure, e.g. ``"c1"``.
        statement: the claim, as the verdict table states it.
        metric: what is compared.
        sweeps: the sweep tags of :mod:`rlhf_zoo.bench.suites` the check reads.
        title: the plot panel's title (after ``(key)``); ``xlabel``, ``ylabel``: its axes.
    """

    key: ClassVar[str]
    statement: ClassVar[str]
    metric: ClassVar[str]
    sweeps: ClassVar[tuple[str, ...]]
    title: ClassVar[str]
    xlabel: ClassVar[str] = ""
    ylabel: ClassVar[str] = ""

    @abstractmethod
    def check(self, groups: Groups, exact: bool) -> Check:
        """The verdict on one suite's groups (``exact``: the records come from the exact testbed)."""

    @abstractmethod
    def draw(self, ax: Any, evidence: Any) -> None:
        """Draw ``evidence`` (a check's ``data``) on ``ax``."""

    def panel_title(self, check: Check) -> str:
        return f"({self.key}) {self.title}"

    def plot(self, ax: Any, check: Check) -> None:
        """The claim's panel: its check's evidence (when the claim was not run, a titled panel that says so: an empty
        pair of axes read as a failed plot)."""
        if check.data is not None:
            self.draw(ax, check.data)
        elif check.status == NOT_RUN:
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set(title=self.panel_title(check), xlabel=self.xlabel, ylabel=self.ylabel)
        ax.grid(alpha=0.3)


# -- helpers ------------------------------------------------------------------------------------------
def find(groups: Groups, tag: str, value: float) -> Group | None:
    """The group of sweep ``tag`` whose knob value equals ``value`` numerically."""
    for v, g in groups.get(tag, {}).items():
        if isinstance(v, (int, float)) and math.isclose(float(v), float(value), rel_tol=1e-9, abs_tol=1e-12):
            return g
    return None


def fmt(x: float, digits: int = 3) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return "—" if not math.isfinite(x) else f"{x:.{digits}f}"


def fmt_value(v: Any) -> str:
    """A knob value in a legend (floats without trailing zeros)."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def lower(a: Iterable[float], b: Iterable[float]) -> tuple[bool, bool | None]:
    """(mean(a) < mean(b), whether the difference is significant; None: no interval).

    An infinite value (a diverged seed) makes its side's mean infinite (:func:`mean_ci`): the means decide the
    direction, and no interval is finite, so the difference is not significant (Welch's interval of the finite
    values alone would leave that seed out of the verdict while the row shows ∞)."""
    a, b = list(a), list(b)
    ma, mb = mean_ci(a)[0], mean_ci(b)[0]
    if math.isinf(ma) or math.isinf(mb):
        return ma < mb, False
    d, h = diff_ci(a, b)
    if not math.isfinite(d):
        return ma < mb, None
    return d < 0, (None if h is None else abs(d) > h)


def significance_note(flags: list[bool | None]) -> str:
    if any(f is None for f in flags):
        return "one seed: no confidence interval, means compared"
    return "all differences significant (95 % Welch CI)" if all(flags) else "some differences not significant at 95 %"


def at(path: TrainingPath, k: float) -> float:
    """The reward (column 2) where a (step, KL, reward) path first reaches KL ``k``; NaN if never."""
    y = interp_path([p[1] for p in path], [p[2] for p in path], k)
    return math.nan if y is None else y


def draw_band(ax: Any, band: Band, colour: Any, label: str) -> None:
    """A band's seed mean as a line, its 95 % interval shaded."""
    means = [e.mean for e in band.estimates]
    errors = [e.error for e in band.estimates]
    ax.plot(band.steps, means, "-", color=colour, label=label)
    lo = [m - h for m, h in zip(means, errors, strict=True)]
    hi = [m + h for m, h in zip(means, errors, strict=True)]
    ax.fill_between(band.steps, lo, hi, color=colour, alpha=0.15, lw=0)


def draw_path(ax: Any, path: TrainingPath, style: str = "-", **kw: Any) -> None:
    """A seed-mean training path in the (KL, reward) plane."""
    ax.plot([p[1] for p in path], [p[2] for p in path], style, **kw)


__all__ = [
    "NOT_REPRODUCED",
    "NOT_RUN",
    "REPRODUCED",
    "Band",
    "Check",
    "Claim",
    "Estimate",
    "Groups",
    "TrainingPath",
    "at",
    "draw_band",
    "draw_path",
    "find",
    "fmt",
    "fmt_value",
    "lower",
    "significance_note",
]
