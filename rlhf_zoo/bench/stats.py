"""Small statistics for benchmark tables: Student-t confidence intervals and curve interpolation.

Pure Python (no SciPy): the two-sided Student-t critical value for an integer number of degrees of
freedom is found by bisection on the closed-form distribution function of Student's t for integer ν,

    A(t | ν) = P(|T| < t),  θ = atan(t / √ν),
    ν odd:  A = (2/π)·(θ + sin θ·cos θ·(1 + (2/3)cos²θ + (2·4)/(3·5)cos⁴θ + … up to cos^(ν−3)θ))   (ν > 1)
    ν = 1:  A = 2θ/π
    ν even: A = sin θ·(1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … up to cos^(ν−2)θ)

(Abramowitz & Stegun 26.7.3–26.7.4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def student_t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with ``df`` (integer ≥ 1) degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term, total = 1.0, 1.0
        for k in range(1, (df - 1) // 2):  # terms cos^(2k)θ · (2·4…2k)/(3·5…(2k+1))
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return (2.0 / math.pi) * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0
    for k in range(1, df // 2):  # terms cos^(2k)θ · (1·3…(2k−1))/(2·4…2k)
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def t_critical(df: int, level: float = 0.95) -> float:
    """The two-sided critical value t* with P(|T| < t*) = ``level`` (e.g. 2.776 for df = 4)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    lo, hi = 0.0, 1.0
    while student_t_two_sided(hi, df) < level:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_two_sided(mid, df) < level:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are real finite numbers (drops None, NaN, inf and non-numbers)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out.append(float(v))
    return out


def mean_ci(values: Iterable[float | None], level: float = 0.95) -> tuple[float, float | None, int]:
    """(mean, half-width of the two-sided t confidence interval, n) over the finite values.

    The half-width is t*_{n−1} · s / √n with s the sample standard deviation; it is None for n < 2.
    The mean is NaN for n = 0, and ±inf (no interval) when a value is infinite.
    """
    values = list(values)
    infinite = [v for v in values if isinstance(v, float) and math.isinf(v)]
    if infinite:
        signs = {math.copysign(1.0, v) for v in infinite}  # +inf and −inf together: no mean
        mean = math.nan if len(signs) > 1 else math.copysign(math.inf, signs.pop())
        return mean, None, len(finite(values)) + len(infinite)
    xs = finite(values)
    n = len(xs)
    if n == 0:
        return math.nan, None, 0
    m = sum(xs) / n
    if n < 2:
        return m, None, n
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t_critical(n - 1, level) * s / math.sqrt(n), n


def diff_ci(a: Iterable[float | None], b: Iterable[float | None], level: float = 0.95) -> tuple[float, float | None]:
    """(mean(a) − mean(b), half-width of Welch's t interval for the difference); None below 2 values each."""
    xa, xb = finite(a), finite(b)
    if not xa or not xb:
        return math.nan, None
    ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
    if len(xa) < 2 or len(xb) < 2:
        return ma - mb, None
    va = sum((x - ma) ** 2 for x in xa) / (len(xa) - 1) / len(xa)
    vb = sum((x - mb) ** 2 for x in xb) / (len(xb) - 1) / len(xb)
    se2 = va + vb
    if se2 == 0:
        return ma - mb, 0.0
    dof = se2**2 / ((va**2 / (len(xa) - 1) if va else 0.0) + (vb**2 / (len(xb) - 1) if vb else 0.0))
    return ma - mb, t_critical(max(1, int(dof)), level) * math.sqrt(se2)  # floor: conservative


def interp_sorted(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """Linear interpolation of the curve through (xs, ys) sorted by x at ``x``; None outside its range."""
    pts = sorted((a, b) for a, b in zip(xs, ys, strict=True) if math.isfinite(a) and math.isfinite(b))
    if not pts or x < pts[0][0] or x > pts[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]  # a single point, x equal to it


def interp_path(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """y where a path (points in training order) first reaches ``x``, interpolated linearly; None if never."""
    pts = [(a, b) for a, b in zip(xs, ys, strict=True) if math.isfinite(a) and math.isfinite(b)]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if min(x0, x1) <= x <= max(x0, x1):
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if len(pts) == 1 and pts[0][0] == x:
        return pts[0][1]
    return None


def fmt_ci(mean: float, half: float | None, digits: int = 3) -> str:
    """``mean ± half`` (or just the mean when there is no interval; ``—`` for NaN)."""
    if math.isinf(mean):
        return "∞" if mean > 0 else "−∞"
    if not math.isfinite(mean):
        return "—"
    if abs(mean) >= 10_000:
        text = f"{mean:,.0f}" + ("" if half is None else f" ± {half:,.0f}")
        return text
    return f"{mean:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


def fmt_seeds_ci(values: Sequence[float | None], digits: int = 3) -> str:
    """A table cell over seeds: :func:`fmt_ci` of :func:`mean_ci`, with ``(k/n)`` where only k of the n values
    are finite (a diverged seed, a metric some runs lack), so that a mean of k seeds does not pass for all n.
    ``digits=0`` prints whole numbers (counts)."""
    m, h, k = mean_ci(values)
    return fmt_ci(m, h, digits) + (f" ({k}/{len(values)})" if 0 < k < len(values) else "")


__all__ = [
    "diff_ci",
    "finite",
    "fmt_ci",
    "fmt_seeds_ci",
    "interp_path",
    "interp_sorted",
    "mean_ci",
    "student_t_two_sided",
    "t_critical",
]
