"""The BOND paper's claims, checked on benchmark records (exact quantities on ``exact``, estimates elsewhere).

Each claim is a function of the grouped records of one suite (:func:`rlhf_zoo.bench.records.group_records`)
that returns a :class:`Check`: a status (``reproduced``, ``not reproduced`` or ``not run``), the
metric and the numbers, as text, and the numbers as data (for tests). A difference counts only when
its Welch 95% confidence interval over seeds excludes 0; with one seed there is no interval and the
direction of the means decides (the text says so).

- (a) Jeffreys β = 0.5 lowers both KL(π‖π_BoN) and KL(π_BoN‖π) relative to β = 0 and β = 1, at
  equal steps (sweep ``bond_beta``). On a task without an oracle only the backward divergence has an
  estimate from the records, KL(π‖π_ref) − (n−1)·E_π[log p̂_≤] − log n (continuous-reward B = n).
- (b) Iterative BOND keeps improving where fixed-n BOND saturates: the proxy-reward gain over the
  second half of training, iterative (every swap period of sweep ``iterative``) vs BOND n = 2.
- (c1) J-BOND's EMA anchor gives the same reward at lower KL than hard swaps: the proxy reward at a
  matched KL (the smallest final KL of the two) for each swap period M and the EMA rate η ≈ 1/M.
- (c2) Larger γ slows KL growth: final KL(π‖π_ref) decreases with γ (sweep ``jbond_gamma``).
- (d) J-BOND's reward-vs-KL curve lies above REINFORCE's (2 samples, leave-one-out) at every
  β_RL ∈ {0.001, 0.01, 0.1, 1}: along the seed-mean training paths, over the KL range both reach.
- (e1) Under π_BoN, E[log p_≤] = −1/n (exact only for a continuous reward; the deviation is reported).
- (e2) Best-of-N's KL estimate stays below the bound log n − (n−1)/n.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlhf_zoo.bench.records import Group
from rlhf_zoo.bench.stats import diff_ci, interp_path, mean_ci

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"

PAPER_BETAS_RL = (0.001, 0.01, 0.1, 1.0)
CURVE_TOLERANCE = 0.01  # claim (d): J-BOND may fall below REINFORCE by at most this much reward anywhere
LOG_QUANTILE_TOLERANCE = 0.05  # claim (e1): |E[log p_≤] + 1/n| allowed (a discrete reward shifts it up)
SATURATION = 0.1  # claim (b): fixed-n BOND saturates if its second-half gain is < 10 % of its total gain

Groups = dict[str, dict[Any, Group]]


@dataclass
class Check:
    """The outcome of one claim on one suite."""

    status: str
    numbers: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    metric: str
    check: Callable[[Groups, bool], Check]


# -- helpers ------------------------------------------------------------------------------------------
def find(groups: Groups, tag: str, value: float) -> Group | None:
    """The group of sweep ``tag`` whose knob value equals ``value`` numerically."""
    for v, g in groups.get(tag, {}).items():
        if isinstance(v, (int, float)) and math.isclose(float(v), float(value), rel_tol=1e-9, abs_tol=1e-12):
            return g
    return None


def arg(rec: dict[str, Any], key: str, default: str | None = None) -> str | None:
    """The last ``key=value`` override of a record's arguments."""
    out = default
    for a in rec.get("args", []):
        k, _, v = a.partition("=")
        if k.strip() == key:
            out = v
    return out


def _f(x: float, digits: int = 3) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return "—" if not math.isfinite(x) else f"{x:.{digits}f}"


def _ci(values: list[float], digits: int = 3) -> str:
    m, h, _ = mean_ci(values)
    return _f(m, digits) + ("" if h is None or not math.isfinite(m) else f" ± {h:.{digits}f}")


def _lower(a: list[float], b: list[float]) -> tuple[bool, bool | None, float]:
    """(mean(a) < mean(b), whether the difference is significant (None: no interval), difference)."""
    d, h = diff_ci(a, b)
    if not math.isfinite(d):
        ma, mb = mean_ci(a)[0], mean_ci(b)[0]
        return ma < mb, None, ma - mb
    return d < 0, (None if h is None else abs(d) > h), d


def _significance_note(flags: list[bool | None]) -> str:
    if any(f is None for f in flags):
        return "one seed or identical values: no confidence interval, means compared"
    return "all differences significant (95 % Welch CI)" if all(flags) else "some differences not significant at 95 %"


def _step_values(rec: dict[str, Any], key: str) -> list[tuple[float, float]]:
    return [(float(m["step"]), float(m[key])) for m in rec.get("metrics", []) if isinstance(m.get(key), (int, float))]


def _at(path: list[tuple[float, ...]], k: float) -> float:
    """The reward (column 2) where a (step, KL, reward) path first reaches KL ``k``; NaN if never."""
    y = interp_path([p[1] for p in path], [p[2] for p in path], k)
    return math.nan if y is None else y


def _late_gain(rec: dict[str, Any], key: str = "reward/proxy") -> tuple[float, float]:
    """(gain over the second half of training, total gain) of one run's evaluated ``key``."""
    pts = _step_values(rec, key)
    if len(pts) < 2:
        return math.nan, math.nan
    last = pts[-1][0]
    mid = min(pts, key=lambda p: (abs(p[0] - last / 2), -p[0]))  # ties: the later evaluation
    return pts[-1][1] - mid[1], pts[-1][1] - pts[0][1]


# -- the claims -----------------------------------------------------------------------------------------
def claim_a(groups: Groups, exact: bool) -> Check:
    g = {b: find(groups, "bond_beta", b) for b in (0.0, 0.5, 1.0)}
    if any(v is None for v in g.values()):
        return Check(NOT_RUN, "needs BOND n=4 at Jeffreys β = 0, 0.5 and 1 (sweep bond_beta)")
    if exact:
        divs = {
            "KL(π‖π_BoN)": lambda grp: grp.finals("kl/to_bon"),
            "KL(π_BoN‖π)": lambda grp: grp.finals("kl/from_bon"),
        }
        note = ""
    else:

        def backward(grp: Group) -> list[float]:
            out = []
            for r in grp.records:
                n = float(arg(r, "algo.n", "4") or 4)
                s = r.get("summary", {})
                out.append(s.get("kl/exact", math.nan) - (n - 1) * s.get("quantile/log_mean", math.nan) - math.log(n))
            return out

        divs = {"KL(π‖π_BoN) estimate": backward}
        note = "; KL(π_BoN‖π) not measurable from the records (needs log π on Best-of-N samples)"
    parts, ok, flags, data = [], True, [], {}
    for name, fn in divs.items():
        vals = {b: fn(grp) for b, grp in g.items()}
        data[name] = {b: mean_ci(v)[0] for b, v in vals.items()}
        for other in (0.0, 1.0):
            lower, sig, _ = _lower(vals[0.5], vals[other])
            flags.append(sig)
            ok = ok and lower and sig is not False
        parts.append(f"{name}: β=0 {_ci(vals[0.0])}, β=0.5 {_ci(vals[0.5])}, β=1 {_ci(vals[1.0])}")
    status = REPRODUCED if ok else NOT_REPRODUCED
    return Check(status, "; ".join(parts) + f" ({_significance_note(flags)}){note}", data)


def claim_b(groups: Groups, exact: bool) -> Check:
    fixed = find(groups, "bond", 2)
    iters = groups.get("iterative", {})
    if fixed is None or not iters:
        return Check(NOT_RUN, "needs BOND n=2 (sweep bond) and iterative BOND (sweep iterative)")
    fixed_late = [_late_gain(r)[0] for r in fixed.records]
    fixed_total = [_late_gain(r)[1] for r in fixed.records]
    m_late, m_total = mean_ci(fixed_late)[0], mean_ci(fixed_total)[0]
    saturated = math.isfinite(m_late) and m_total > 0 and m_late < SATURATION * m_total
    parts = [f"second-half gain of proxy reward: BOND n=2 {_ci(fixed_late)} (of {_f(m_total)} in total)"]
    ok, flags, data = saturated, [], {"fixed_late": m_late, "fixed_total": m_total}
    for period, grp in iters.items():
        late = [_late_gain(r)[0] for r in grp.records]
        d, h = diff_ci(late, fixed_late)
        sig = None if h is None else d > h
        flags.append(sig)
        ok = ok and d > 0 and sig is not False
        data[f"iterative_{period}"] = mean_ci(late)[0]
        parts.append(f"iterative (swap every {period}) {_ci(late)}")
    sat = "saturates" if saturated else "does not saturate"
    return Check(
        REPRODUCED if ok else NOT_REPRODUCED,
        ", ".join(parts) + f"; fixed n=2 {sat} (< {SATURATION:.0%} of its gain in the second half) "
        f"({_significance_note(flags)})",
        data,
    )


def _pairs(groups: Groups) -> list[tuple[float, Group, float, Group]]:
    """(η, EMA group, M, swap group) with η closest to 1/M (within a factor 1.5)."""
    out = []
    for m, swap in groups.get("jbond_swap", {}).items():
        best = None
        for eta, ema in groups.get("jbond_eta", {}).items():
            dist = abs(math.log(float(eta) * float(m)))
            if dist < math.log(1.5) and (best is None or dist < best[0]):
                best = (dist, float(eta), ema)
        if best is not None:
            out.append((best[1], best[2], float(m), swap))
    return out


def claim_c1(groups: Groups, exact: bool) -> Check:
    pairs = _pairs(groups)
    if not pairs:
        return Check(
            NOT_RUN,
            "needs J-BOND with an EMA rate η (sweep jbond_eta) and hard swaps every M ≈ 1/η steps (sweep jbond_swap)",
        )
    ok, flags, parts, data = True, [], [], {}
    for eta, ema, m, swap in pairs:
        k_star = min(min(ema.finals("kl/exact")), min(swap.finals("kl/exact")))

        def at(grp: Group, k: float = k_star) -> list[float]:
            return [_at(path, k) for path in grp.paths("kl/exact", "reward/proxy")]

        r_ema, r_swap = at(ema), at(swap)
        d, h = diff_ci(r_ema, r_swap)
        sig = None if h is None else d > h
        flags.append(sig)
        ok = ok and d > 0 and sig is not False
        data[f"{eta}/{int(m)}"] = d
        parts.append(
            f"η={eta:g} vs swap every {int(m)}: reward at KL {k_star:.2f}: EMA {_ci(r_ema)}, swaps {_ci(r_swap)} "
            f"(final KL {_ci(ema.finals('kl/exact'))} vs {_ci(swap.finals('kl/exact'))})"
        )
    return Check(REPRODUCED if ok else NOT_REPRODUCED, "; ".join(parts) + f" ({_significance_note(flags)})", data)


def claim_c2(groups: Groups, exact: bool) -> Check:
    gs = groups.get("jbond_gamma", {})
    if len(gs) < 2:
        return Check(NOT_RUN, "needs J-BOND at two or more γ (sweep jbond_gamma)")
    order = sorted(gs, key=float)
    finals = {g: gs[g].finals("kl/exact") for g in order}
    means = [mean_ci(finals[g])[0] for g in order]
    decreasing = all(b < a for a, b in zip(means, means[1:], strict=False))
    lower, sig, _ = _lower(finals[order[-1]], finals[order[0]])
    ok = decreasing and lower and sig is not False
    text = ", ".join(f"γ={float(g):g}: {_ci(finals[g])}" for g in order)
    ends = f"γ={float(order[0]):g} vs γ={float(order[-1]):g}"
    note = "no confidence interval" if sig is None else ("significant" if sig else "not significant")
    return Check(
        REPRODUCED if ok else NOT_REPRODUCED,
        f"final KL(π‖π_ref) {text}; {'decreasing' if decreasing else 'not decreasing'} in γ ({ends}: {note} at 95 %)",
        {"kl": dict(zip(order, means, strict=True))},
    )


def claim_d(groups: Groups, exact: bool) -> Check:
    jb = find(groups, "jbond_gamma", 0.0)
    if jb is None or not groups.get("reinforce"):
        return Check(NOT_RUN, "needs the default J-BOND (sweep jbond_gamma, γ=0) and REINFORCE (sweep reinforce)")
    j_path = jb.mean_path("kl/exact", "reward/proxy")
    if not j_path:
        return Check(NOT_RUN, "J-BOND records have no metrics")
    ok, parts, missing, data = True, [], [], {}
    for beta in PAPER_BETAS_RL:
        rf = find(groups, "reinforce", beta)
        if rf is None:
            missing.append(f"{beta:g}")
            continue
        r_path = rf.mean_path("kl/exact", "reward/proxy")
        if not r_path:
            missing.append(f"{beta:g}")
            continue
        k_max = min(max(p[1] for p in j_path), max(p[1] for p in r_path))
        diffs = []
        for i in range(1, 21):
            k = k_max * (0.1 + 0.9 * i / 20)
            a, b = _at(j_path, k), _at(r_path, k)
            if math.isfinite(a) and math.isfinite(b):
                diffs.append(a - b)
        if not diffs:
            ok = False
            parts.append(f"β_RL={beta:g}: no common KL range")
            continue
        above = min(diffs) >= -CURVE_TOLERANCE
        ok = ok and above
        data[beta] = (min(diffs), sum(diffs) / len(diffs))
        parts.append(
            f"β_RL={beta:g}: J-BOND − REINFORCE over KL ≤ {k_max:.2f}: mean {sum(diffs) / len(diffs):+.3f}, "
            f"min {min(diffs):+.3f} ({'above' if above else 'not above'})"
        )
    if not data and not parts:
        return Check(NOT_RUN, f"REINFORCE not run at β_RL ∈ {{{', '.join(missing)}}}")
    text = "; ".join(parts) + (f"; β_RL ∈ {{{', '.join(missing)}}} not run" if missing else "")
    text += f" (reward at matched KL on seed-mean training paths; tolerance {CURVE_TOLERANCE})"
    return Check(REPRODUCED if ok else NOT_REPRODUCED, text, data)


def _bon(groups: Groups) -> list[tuple[int, Group]]:
    return [(int(n), g) for n, g in groups.get("best_of_n", {}).items() if int(n) >= 2]


def claim_e1(groups: Groups, exact: bool) -> Check:
    bon = _bon(groups)
    if not bon:
        return Check(NOT_RUN, "needs Best-of-N at n ≥ 2 (sweep best_of_n)")
    parts, ok, data = [], True, {}
    for n, g in bon:
        m = mean_ci(g.finals("quantile/log_mean"))[0]
        dev = m + 1.0 / n
        ok = ok and abs(dev) <= LOG_QUANTILE_TOLERANCE
        data[n] = dev
        parts.append(f"n={n}: {_f(m)} vs {-1 / n:.3f} ({dev:+.3f})")
    how = "exact p_≤" if exact else "p̂_≤ against the evaluation's reference samples"
    return Check(
        REPRODUCED if ok else NOT_REPRODUCED,
        "; ".join(parts) + f" ({how}; tolerance ±{LOG_QUANTILE_TOLERANCE}: a discrete reward makes p_≤ ≥ U, "
        "so E[log p_≤] > −1/n)",
        data,
    )


def claim_e2(groups: Groups, exact: bool) -> Check:
    bon = _bon(groups)
    if not bon:
        return Check(NOT_RUN, "needs Best-of-N at n ≥ 2 (sweep best_of_n)")
    parts, ok, data = [], True, {}
    for n, g in bon:
        est = mean_ci(g.finals("kl/exact"))[0]
        bound = math.log(n) - (n - 1) / n
        ok = ok and est <= bound + 1e-9
        data[n] = (est, bound)
        parts.append(f"n={n}: {_f(est)} ≤ {bound:.3f}" if est <= bound + 1e-9 else f"n={n}: {_f(est)} > {bound:.3f}")
    what = "exact KL(π_BoN‖π_ref)" if exact else "quantile estimate E[(n−1)·log p̂_≤ + log B̂]"
    return Check(REPRODUCED if ok else NOT_REPRODUCED, "; ".join(parts) + f" ({what} vs bound)", data)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "a",
        "Jeffreys β=0.5 lowers both KL(π‖π_BoN) and KL(π_BoN‖π) relative to β=0 and β=1 (equal steps)",
        "final KL(π‖π_BoN), KL(π_BoN‖π) of BOND n=4",
        claim_a,
    ),
    Claim(
        "b",
        "iterative BOND keeps improving where fixed-n BOND saturates",
        "proxy-reward gain over the second half of training",
        claim_b,
    ),
    Claim(
        "c1",
        "J-BOND's EMA anchor gives the same reward at lower KL than hard swaps",
        "proxy reward at matched KL(π‖π_ref), EMA η vs swap period ≈ 1/η",
        claim_c1,
    ),
    Claim("c2", "larger γ slows J-BOND's KL growth", "final KL(π‖π_ref) over γ", claim_c2),
    Claim(
        "d",
        "J-BOND's reward-vs-KL curve lies above REINFORCE (2 samples, leave-one-out) at every "
        "β_RL ∈ {0.001, 0.01, 0.1, 1}",
        "proxy reward at matched KL along training",
        claim_d,
    ),
    Claim("e1", "Best-of-N: E[log p_≤] under π_BoN is −1/n", "quantile/log_mean vs −1/n", claim_e1),
    Claim("e2", "Best-of-N: its KL estimate stays below log n − (n−1)/n", "bon/kl_estimate vs bon/kl_bound", claim_e2),
)


def check_all(groups: Groups | None, exact: bool) -> list[Check]:
    """Every claim on one suite's groups (None: the suite has no records → every claim "not run")."""
    if not groups:
        return [Check(NOT_RUN, "no records") for _ in CLAIMS]
    return [c.check(groups, exact) for c in CLAIMS]


def is_exact(records: list[dict[str, Any]]) -> bool:
    """Whether records come from a task with an exact oracle (their KL estimator is ``exact``)."""
    return any(r.get("summary", {}).get("kl/estimator") == "exact" for r in records)


__all__ = ["CLAIMS", "NOT_REPRODUCED", "NOT_RUN", "REPRODUCED", "Check", "Claim", "check_all", "find", "is_exact"]
