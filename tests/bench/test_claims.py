"""The claims' verdicts on synthetic records: reproduced when the numbers say so, not otherwise; and
their plot panels, drawn from the verdicts' evidence."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass, replace

import numpy as np
import pytest

from rlhf_zoo.bench.claims import CLAIMS, NOT_REPRODUCED, NOT_RUN, REPRODUCED, check_all
from rlhf_zoo.bench.claims.base import Estimate, lower, significance_note
from rlhf_zoo.bench.claims.best_of_n import KlBound, LogQuantile
from rlhf_zoo.bench.claims.ema_anchor import EmaAnchor
from rlhf_zoo.bench.claims.gamma import GammaSlowsKl
from rlhf_zoo.bench.claims.iterative import IterativeBond, late_gain
from rlhf_zoo.bench.claims.jeffreys import Jeffreys
from rlhf_zoo.bench.claims.vs_reinforce import JBondAboveReinforce, grid
from rlhf_zoo.bench.records import group_records
from rlhf_zoo.bench.suites import SWEEPS
from tests.bench.helpers import synth_record

claim_a = Jeffreys().check
claim_b = IterativeBond().check
claim_c1 = EmaAnchor().check
claim_c2 = GammaSlowsKl().check
claim_d = JBondAboveReinforce().check
claim_e1 = LogQuantile().check
claim_e2 = KlBound().check

SEEDS = range(4)
NOISE = (-0.002, 0.001, 0.0, 0.001)  # small, seed-dependent


def _jeffreys(to_bon: dict[float, float], from_bon: dict[float, float], noise=NOISE, estimator="exact"):
    return group_records(
        [
            synth_record(
                "bond_beta",
                b,
                s,
                {
                    "kl/to_bon": to_bon[b] + noise[s],
                    "kl/from_bon": from_bon[b] + noise[s],
                    "kl/exact": 0.6,
                    "quantile/log_mean": -0.2,
                },
                estimator=estimator,
                args=["algo=bond", "algo.n=4", f"algo.beta={b}"],
            )
            for b in (0.0, 0.5, 1.0)
            for s in SEEDS
        ]
    )


def test_a_jeffreys():
    good = _jeffreys({0.0: 0.05, 0.5: 0.02, 1.0: 0.04}, {0.0: 0.04, 0.5: 0.02, 1.0: 0.05})
    chk = claim_a(good, exact=True)
    assert chk.status == REPRODUCED, chk.numbers
    assert chk.data.divergences["KL(π‖π_BoN)"][0.5].mean == sum(0.02 + NOISE[s] for s in SEEDS) / len(SEEDS)
    # β = 1 is better on the backward KL: not reproduced
    assert (
        claim_a(_jeffreys({0.0: 0.05, 0.5: 0.02, 1.0: 0.01}, {0.0: 0.04, 0.5: 0.02, 1.0: 0.05}), True).status
        == NOT_REPRODUCED
    )
    # the right direction but far inside the noise: not reproduced
    noisy = _jeffreys(
        {0.0: 0.021, 0.5: 0.02, 1.0: 0.021}, {0.0: 0.021, 0.5: 0.02, 1.0: 0.021}, noise=(-0.02, 0.02, -0.01, 0.01)
    )
    assert claim_a(noisy, exact=True).status == NOT_REPRODUCED
    assert claim_a(group_records([]), exact=True).status == NOT_RUN


def test_a_estimate_without_an_oracle_uses_the_backward_kl_only():
    g = _jeffreys({0.0: 0.05, 0.5: 0.02, 1.0: 0.04}, {0.0: 0.04, 0.5: 0.02, 1.0: 0.05}, estimator="exact_token")
    chk = claim_a(g, exact=False)
    assert "not measurable" in chk.numbers and list(chk.data.divergences) == ["KL(π‖π_BoN) estimate"]
    # identical kl/exact and quantiles at every β: the estimates tie, so β = 0.5 is not lower
    assert chk.status == NOT_REPRODUCED
    expected = 0.6 - 3 * (-0.2) - math.log(4)
    assert math.isclose(chk.data.divergences["KL(π‖π_BoN) estimate"][0.5].mean, expected)


def test_a_estimate_reads_each_records_n():
    """A suite of its own may run BOND at n = 8: KL(π‖π_BoN) ≈ 0.6 − 7·(−0.2) − log 8 there."""
    records = [
        synth_record(
            "bond_beta",
            b,
            s,
            {"kl/exact": 0.6, "quantile/log_mean": -0.2},
            estimator="exact_token",
            args=["algo=bond", "algo.n=8", f"algo.beta={b}"],
        )
        for b in (0.0, 0.5, 1.0)
        for s in SEEDS
    ]
    chk = claim_a(group_records(records), exact=False)
    assert math.isclose(chk.data.divergences["KL(π‖π_BoN) estimate"][0.5].mean, 0.6 + 7 * 0.2 - math.log(8))


def test_a_estimate_takes_a_record_whose_metric_is_nan():
    """A compact record stores a NaN metric as null: that seed drops out of the estimate (no TypeError on
    None), and the other seeds still decide the verdict."""
    records = [
        synth_record(
            "bond_beta",
            b,
            s,
            {"kl/exact": {0.0: 0.9, 0.5: 0.6, 1.0: 0.9}[b] + NOISE[s], "quantile/log_mean": -0.2},
            estimator="exact_token",
            args=["algo=bond", "algo.n=4", f"algo.beta={b}"],
        )
        for b in (0.0, 0.5, 1.0)
        for s in SEEDS
    ]
    records[0]["summary"]["kl/exact"] = None  # β = 0, seed 0, read back from its compact record
    chk = claim_a(group_records(records), exact=False)
    est = chk.data.divergences["KL(π‖π_BoN) estimate"]
    assert math.isnan(est[0.0].values[0]) and len([v for v in est[0.0].values if math.isfinite(v)]) == 3
    assert chk.status == REPRODUCED, chk.numbers


def _reward_path(values: list[float], noise: float = 0.0) -> list[dict[str, float]]:
    return [{"step": 10 * i, "reward/proxy": v + noise, "kl/exact": 0.1 * i} for i, v in enumerate(values)]


def test_b_iterative_vs_fixed():
    fixed = [0.0, 0.6, 0.65, 0.66, 0.66]
    improving = [0.0, 0.6, 0.9, 1.3, 1.6]
    recs = [
        synth_record("bond", 2, s, {"reward/proxy": fixed[-1]}, knob="algo.n", path=_reward_path(fixed, NOISE[s]))
        for s in SEEDS
    ]
    recs += [
        synth_record(
            "iterative",
            50,
            s,
            {"reward/proxy": improving[-1]},
            knob="algo.anchor_period",
            path=_reward_path(improving, NOISE[s]),
        )
        for s in SEEDS
    ]
    chk = claim_b(group_records(recs), exact=True)
    assert chk.status == REPRODUCED, chk.numbers
    assert math.isclose(chk.data.iterative_late[50].mean, 1.6 - 0.9, abs_tol=1e-9)
    # iterative that saturates too: not reproduced
    recs2 = [r for r in recs if r["memberships"][0]["sweep"] == "bond"]
    recs2 += [
        synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path(fixed, NOISE[s]))
        for s in SEEDS
    ]
    assert claim_b(group_records(recs2), exact=True).status == NOT_REPRODUCED


def test_b_edge_cases():
    """One seed (no interval): iterative BOND doing worse than fixed n = 2 is not reproduced; a fixed-n run
    whose reward falls has not saturated; the second half is measured from the evaluation nearest the middle
    (steps 0, 10, 20, 30: step 20 on a tie with 10)."""
    fixed = [0.0, 0.6, 0.65, 0.66, 0.66]
    recs = [synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path(fixed))]
    worse = recs + [synth_record("iterative", 50, 0, {}, knob="algo.anchor_period", path=_reward_path(fixed, -0.1))]
    worse[-1]["metrics"][-1]["reward/proxy"] = 0.5  # its second-half gain: 0.5 − 0.55 < fixed's 0.01
    assert claim_b(group_records(worse), exact=True).status == NOT_REPRODUCED
    falling = [0.0, -0.2, -0.3, -0.4, -0.5]
    recs = [synth_record("bond", 2, s, {}, knob="algo.n", path=_reward_path(falling, NOISE[s])) for s in SEEDS]
    recs += [
        synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path([0, 0.6, 0.9, 1.3, 1.6]))
        for s in SEEDS
    ]
    chk = claim_b(group_records(recs), exact=True)
    assert chk.status == NOT_REPRODUCED and not chk.data.saturated
    rec = synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path([0.0, 1.0, 3.0, 7.0]))
    assert late_gain(rec) == (7.0 - 3.0, 7.0)


def test_b_a_fixed_n_run_that_never_learned_has_not_saturated():
    """BOND n = 2 whose total gain is not above 0 (noise around its start, as on the quick suite: 0.004 in
    total) learned nothing to saturate at: the claim is not reproduced by an iterative run that gains, and the
    numbers say that it did not learn rather than that it saturates."""
    flat = [0.0, 0.01, 0.005, 0.0, 0.0]
    recs = []
    for s, end in zip(SEEDS, (0.05, -0.04, 0.01, -0.02), strict=True):
        path = _reward_path(flat)
        path[-1]["reward/proxy"] = end
        recs.append(synth_record("bond", 2, s, {}, knob="algo.n", path=path))
    recs += [
        synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path([0, 0.6, 0.9, 1.3, 1.6]))
        for s in SEEDS
    ]
    chk = claim_b(group_records(recs), exact=False)
    assert chk.status == NOT_REPRODUCED and not chk.data.saturated
    assert "fixed n=2 does not learn" in chk.numbers and "saturates" not in chk.numbers


def _kl_reward_path(kls: list[float], slope: float, noise: float = 0.0) -> list[dict[str, float]]:
    return [{"step": 10 * i, "kl/exact": k, "reward/proxy": slope * k + noise} for i, k in enumerate(kls)]


def test_c1_ema_vs_swaps():
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]

    def recs(ema_slope: float, swap_slope: float):
        out = [
            synth_record(
                "jbond_eta", 0.02, s, {"kl/exact": 2.0}, knob="algo.eta", path=_kl_reward_path(kls, ema_slope, NOISE[s])
            )
            for s in SEEDS
        ]
        out += [
            synth_record(
                "jbond_swap",
                50,
                s,
                {"kl/exact": 2.0},
                knob="algo.swap_period",
                path=_kl_reward_path(kls, swap_slope, NOISE[s]),
            )
            for s in SEEDS
        ]
        out += [
            synth_record(
                "jbond_swap",
                7,
                s,
                {"kl/exact": 2.0},
                knob="algo.swap_period",  # no η ≈ 1/7: unpaired
                path=_kl_reward_path(kls, 0.0),
            )
            for s in SEEDS
        ]
        return group_records(out)

    good = claim_c1(recs(1.0, 0.8), exact=True)
    assert good.status == REPRODUCED, good.numbers
    assert [(p.eta, p.period) for p in good.data.pairs] == [(0.02, 50)]
    assert claim_c1(recs(0.8, 1.0), exact=True).status == NOT_REPRODUCED
    only_swaps = group_records([synth_record("jbond_swap", 50, 0, {"kl/exact": 1.0})])
    assert claim_c1(only_swaps, exact=True).status == NOT_RUN


def test_c1_compares_at_the_kl_both_reach_and_needs_the_right_direction_with_one_seed():
    """EMA ends at KL 1.5, swaps at 2.0: rewards are read at 1.5. With one seed (no interval), swaps doing
    better is not reproduced."""
    ema = _kl_reward_path([0.0, 0.5, 1.0, 1.5], 1.0)
    swap = _kl_reward_path([0.0, 0.5, 1.0, 1.5, 2.0], 0.8)
    records = [
        synth_record("jbond_eta", 0.02, 0, {"kl/exact": 1.5}, knob="algo.eta", path=ema),
        synth_record("jbond_swap", 50, 0, {"kl/exact": 2.0}, knob="algo.swap_period", path=swap),
    ]
    chk = claim_c1(group_records(records), exact=True)
    assert chk.data.pairs[0].kl == 1.5 and chk.status == REPRODUCED
    pair = chk.data.pairs[0]  # the text and the evidence give each anchor its own final KL
    assert (pair.ema_final_kl.mean, pair.swap_final_kl.mean) == (1.5, 2.0)
    assert "(final KL 1.500 vs 2.000)" in chk.numbers
    records[1] = synth_record(
        "jbond_swap",
        50,
        0,
        {"kl/exact": 2.0},
        knob="algo.swap_period",
        path=_kl_reward_path([0.0, 0.5, 1.0, 1.5, 2.0], 1.2),
    )
    assert claim_c1(group_records(records), exact=True).status == NOT_REPRODUCED


@pytest.mark.parametrize("nan_seed", [0, 1, 2])
def test_c1_a_nan_final_kl_is_left_out_whichever_seed_has_it(nan_seed):
    """One EMA seed's final KL is NaN (null in its compact record): the matched KL is the smallest finite
    final KL (2.0), whichever seed it is; Python's min() with a NaN first would make it NaN, and every
    reward "at KL nan" unreadable."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    records = []
    for s in range(3):
        ema = _kl_reward_path(kls, 1.0, NOISE[s])
        if s == nan_seed:
            del ema[-1]["kl/exact"]
        final = {"kl/exact": None if s == nan_seed else 2.0}
        records.append(synth_record("jbond_eta", 0.02, s, final, knob="algo.eta", path=ema))
        swap = _kl_reward_path(kls, 0.8, NOISE[s])
        records.append(synth_record("jbond_swap", 50, s, {"kl/exact": 2.0}, knob="algo.swap_period", path=swap))
    chk = claim_c1(group_records(records), exact=True)
    assert chk.data.pairs[0].kl == 2.0, chk.numbers
    assert chk.status == REPRODUCED, chk.numbers


def test_c2_gamma_slows_kl():
    def recs(kl_by_gamma):
        return group_records(
            [
                synth_record("jbond_gamma", g, s, {"kl/exact": k + NOISE[s]}, knob="algo.gamma")
                for g, k in kl_by_gamma.items()
                for s in SEEDS
            ]
        )

    assert claim_c2(recs({0.0: 2.0, 0.5: 1.5, 1.0: 1.0, 2.0: 0.6}), True).status == REPRODUCED
    assert claim_c2(recs({0.0: 2.0, 0.5: 1.5, 1.0: 1.6, 2.0: 0.6}), True).status == NOT_REPRODUCED
    # a tie between two γ is not a decrease
    assert claim_c2(recs({0.0: 2.0, 0.5: 1.5, 1.0: 1.5, 2.0: 0.6}), True).status == NOT_REPRODUCED


def test_c2_significance_is_judged_between_the_smallest_and_the_largest_gamma():
    """The two largest γ barely differ (inside their noise), the ends clearly do: reproduced."""
    noise = (-0.02, 0.02, -0.01, 0.01)
    records = [
        synth_record("jbond_gamma", g, s, {"kl/exact": k + noise[s]}, knob="algo.gamma")
        for g, k in {0.0: 2.0, 0.5: 1.0, 1.0: 0.605, 2.0: 0.6}.items()
        for s in SEEDS
    ]
    assert claim_c2(group_records(records), True).status == REPRODUCED


def test_d_jbond_above_reinforce():
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]

    def recs(rf_slope_at_1: float, betas=(0.001, 0.01, 0.1, 1.0)):
        out = [
            synth_record(
                "jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, NOISE[s])
            )
            for s in SEEDS
        ]
        for b in betas:
            slope = rf_slope_at_1 if b == 1.0 else 0.7
            out += [
                synth_record("reinforce", b, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, slope, NOISE[s]))
                for s in SEEDS
            ]
        return group_records(out)

    assert claim_d(recs(0.9), exact=True).status == REPRODUCED
    below = claim_d(recs(1.2), exact=True)
    assert below.status == NOT_REPRODUCED
    assert below.data.reinforce[1.0].min_diff < 0 and below.data.reinforce[0.1].min_diff > 0
    partial = claim_d(recs(0.9, betas=(0.01, 0.1)), exact=False)
    assert partial.status == REPRODUCED and "0.001, 1} not run" in partial.numbers
    # a suite's own β_RL values are judged too (the paper's are only named as not run)
    own = claim_d(recs(0.9, betas=(0.003, 0.03, 0.3)), exact=False)
    assert own.status == REPRODUCED and set(own.data.reinforce) == {0.003, 0.03, 0.3}
    assert "β_RL=0.003" in own.numbers and "0.001, 0.01, 0.1, 1} not run" in own.numbers


def test_d_needs_the_per_seed_interval_above_zero():
    """Seed means above REINFORCE everywhere, but two of four seeds below it: the paired 95 % interval
    includes 0, so the claim is not reproduced; the same seeds all above it reproduce it."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]

    def recs(offsets):
        out = [
            synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, o))
            for s, o in zip(SEEDS, offsets, strict=True)
        ]
        out += [synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0)) for s in SEEDS]
        return group_records(out)

    mixed = claim_d(recs((0.3, -0.2, 0.3, -0.2)), exact=False)
    pair = mixed.data.reinforce[0.1].paired
    assert mixed.status == NOT_REPRODUCED and pair.values == pytest.approx((0.3, -0.2, 0.3, -0.2))
    assert pair.mean == pytest.approx(0.05) and pair.mean - pair.half < 0 < mixed.data.reinforce[0.1].min_diff
    assert "interval not above 0" in mixed.numbers
    steady = claim_d(recs((0.3, 0.2, 0.25, 0.3)), exact=False)
    assert steady.status == REPRODUCED and "interval above 0" in steady.numbers
    # mean 0.15, half-width 3.182 · 0.1732 / 2 = 0.276: the interval reaches below 0 (though not by half of it)
    close = claim_d(recs((0.3, 0.0, 0.3, 0.0)), exact=False)
    assert close.data.reinforce[0.1].paired.mean == pytest.approx(0.15)
    assert close.status == NOT_REPRODUCED and "interval not above 0" in close.numbers


def _path(kls: list[float], rewards: list[float]) -> list[dict[str, float]]:
    pairs = zip(kls, rewards, strict=True)
    return [{"step": 10 * i, "kl/exact": k, "reward/proxy": r} for i, (k, r) in enumerate(pairs)]


def test_d_compares_over_the_kl_range_both_paths_reach():
    """J-BOND reaches KL 2, REINFORCE only KL 1 and only from KL 0.5: the grid spans 0.145…1 (0.045 apart),
    and the 8 grid values below 0.5 are skipped. J-BOND's reward is 1.2·k up to 0.5, then 0.6 + 1.4·(k − 0.5);
    REINFORCE's is k, so the difference is 0.4·k − 0.1 at the 12 values 0.505, 0.55, …, 1.0
    (Σk = 9.03): mean (0.4 · 9.03 − 1.2) / 12 = 0.201, minimum 0.102 at 0.505."""
    jb = _path([0.0, 0.5, 1.0, 1.5, 2.0], [0.0, 0.6, 1.3, 2.0, 2.7])
    rf = _path([0.5, 1.0], [0.5, 1.0])
    records = [synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=jb) for s in range(3)]
    records += [synth_record("reinforce", 0.1, s, {"kl/exact": 1.0}, path=rf) for s in range(3)]
    comp = claim_d(group_records(records), exact=False).data.reinforce[0.1]
    assert comp.kl_max == 1.0
    assert comp.mean_diff == pytest.approx(0.201) and comp.min_diff == pytest.approx(0.102)
    assert comp.paired.values == pytest.approx((0.201,) * 3) and comp.paired.half == 0.0
    assert grid(1.0)[0] == pytest.approx(0.145) and grid(1.0)[-1] == pytest.approx(1.0) and len(grid(1.0)) == 20


def test_d_pairs_each_seed_with_its_own_reinforce_run():
    """REINFORCE's seeds differ by up to 0.3 in reward; J-BOND is its own seed's REINFORCE + 0.1: paired, every
    seed's difference is exactly 0.1 (against the seed-mean REINFORCE path they would spread)."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    offsets = (0.0, 0.3, -0.2, 0.1)
    records = []
    for s, o in zip(SEEDS, offsets, strict=True):
        jb = _kl_reward_path(kls, 1.0, o + 0.1)
        records.append(synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=jb))
        records.append(synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0, o)))
    pair = claim_d(group_records(records), exact=False).data.reinforce[0.1].paired
    assert pair.values == pytest.approx((0.1,) * 4) and pair.half == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dip,status", [(-0.005, REPRODUCED), (-0.02, NOT_REPRODUCED)])
def test_d_allows_the_seed_mean_path_a_dip_within_the_tolerance(dip, status):
    """J-BOND lies 0.1 above REINFORCE except at KL 1, where it dips by ``dip`` (the grid value nearest is
    1.01, where the dip is ``dip`` + (0.1 − dip)/50); the per-seed interval is well above 0 either way."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    gap = [0.1, 0.1, dip, 0.1, 0.1]
    records = []
    for s in SEEDS:
        jb = _path(kls, [k + g + NOISE[s] for k, g in zip(kls, gap, strict=True)])
        records.append(synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=jb))
        records.append(synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0)))
    chk = claim_d(group_records(records), exact=False)
    comp = chk.data.reinforce[0.1]
    assert comp.min_diff == pytest.approx(dip + (0.1 - dip) / 50 + sum(NOISE) / 4, abs=1e-9)
    assert comp.paired.mean - comp.paired.half > 0
    assert chk.status == status


def test_d_a_first_evaluation_without_kl_does_not_hide_the_common_range():
    """Every seed's first evaluation lacks KL (its seed-mean KL is NaN): the KL range both paths reach is
    read from the finite KL values (2.0), not max() of a list that starts with NaN (NaN: "no common KL
    range", not reproduced)."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    records = []
    for s in SEEDS:
        jb = _kl_reward_path(kls, 1.0, 0.1 + NOISE[s])
        del jb[0]["kl/exact"]
        records.append(synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=jb))
        records.append(synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0)))
    chk = claim_d(group_records(records), exact=False)
    assert chk.data.reinforce[0.1].kl_max == 2.0, chk.numbers
    assert chk.status == REPRODUCED, chk.numbers


def test_d_says_when_a_seeds_paths_stop_short_of_the_compared_kl_values():
    """J-BOND's seed 0 reaches only KL 1, the others KL 2: the seed-mean paths compare at the 20 KL values
    up to 1.75, but seed 0's per-seed mean is over the 10 of them up to 1 (1.75 · (0.1 + 0.045 i) ≤ 1 for
    i ≤ 10). The text must not claim every seed's mean is over the same KL values."""
    records = []
    for s in SEEDS:
        kls = [0.0, 0.25, 0.5, 0.75, 1.0] if s == 0 else [0.0, 0.5, 1.0, 1.5, 2.0]
        jb = _kl_reward_path(kls, 1.0, 0.1 + NOISE[s])
        records.append(synth_record("jbond_gamma", 0.0, s, {"kl/exact": kls[-1]}, knob="algo.gamma", path=jb))
        rf = _kl_reward_path([0.0, 0.5, 1.0, 1.5, 2.0], 1.0)
        records.append(synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=rf))
    chk = claim_d(group_records(records), exact=False)
    comp = chk.data.reinforce[0.1]
    assert comp.kl_max == pytest.approx(1.75)
    assert comp.reached == (10, 20, 20, 20)
    assert "a seed's paths reach 10–20 of these 20 KL values" in chk.numbers
    assert "the mean difference over the same KL values" not in chk.numbers


def _bon(log_mean_dev: float, kl_over_bound: float):
    recs = []
    for n in (1, 2, 4, 8):
        bound = math.log(n) - (n - 1) / n
        recs.append(
            synth_record(
                "best_of_n",
                n,
                0,
                {"quantile/log_mean": -1 / n + log_mean_dev, "kl/exact": bound - 0.01 + kl_over_bound},
                knob="algo.n",
            )
        )
    return group_records(recs)


def test_e_best_of_n():
    assert claim_e1(_bon(0.03, 0.0), True).status == REPRODUCED
    assert claim_e1(_bon(0.2, 0.0), True).status == NOT_REPRODUCED
    assert claim_e1(_bon(-0.2, 0.0), True).status == NOT_REPRODUCED  # below −1/n by as much: not reproduced
    assert claim_e2(_bon(0.0, 0.0101), True).status == NOT_REPRODUCED  # 1e-4 above the bound is above it
    assert claim_e2(_bon(0.0, 0.0), True).status == REPRODUCED
    over = claim_e2(_bon(0.0, 0.05), True)
    assert over.status == NOT_REPRODUCED and "> " in over.numbers
    assert set(claim_e1(_bon(0.0, 0.0), True).data.log_mean) == {2, 4, 8}  # n = 1 is not part of the claim


def test_e1_leaves_out_an_n_the_pool_cannot_measure():
    """A pool has no member outside the draws of its largest n, whose E[log p̂_≤] is stored as null: that n is
    "not measured" and the others decide, instead of a NaN deviation failing the claim."""
    groups = _bon(0.03, 0.0)
    for rec in groups["best_of_n"][8].records:
        rec["summary"]["quantile/log_mean"] = None
    chk = claim_e1(groups, False)
    assert chk.status == REPRODUCED and "n=8: not measured" in chk.numbers


def test_no_records_means_not_run():
    checks = check_all(None, exact=False)
    assert list(checks) == [c.key for c in CLAIMS] and {c.status for c in checks.values()} == {NOT_RUN}


def test_a_reads_the_forward_kl_from_its_own_column():
    """KL(π‖π_BoN) favours β = 0.5 but KL(π_BoN‖π) favours β = 1: not reproduced, and the evidence's
    KL(π_BoN‖π) means are the records' ``kl/from_bon``, not ``kl/to_bon``."""
    from_bon = {0.0: 0.04, 0.5: 0.03, 1.0: 0.01}
    chk = claim_a(_jeffreys({0.0: 0.05, 0.5: 0.02, 1.0: 0.04}, from_bon), exact=True)
    assert chk.status == NOT_REPRODUCED, chk.numbers
    means = {b: e.mean for b, e in chk.data.divergences["KL(π_BoN‖π)"].items()}
    assert means == pytest.approx({b: v + sum(NOISE) / len(NOISE) for b, v in from_bon.items()})


def test_a_with_one_seed_a_tie_is_not_lower():
    """One seed (no interval, the means decide): β = 0.5 equal to β = 0 is not lower than it."""
    recs = _jeffreys({0.0: 0.02, 0.5: 0.02, 1.0: 0.04}, {0.0: 0.02, 0.5: 0.02, 1.0: 0.05}, noise=(0.0,) * 4)
    one_seed = group_records([r for g in recs.values() for grp in g.values() for r in grp.records if r["seed"] == 0])
    chk = claim_a(one_seed, exact=True)
    assert chk.status == NOT_REPRODUCED and "one seed" in chk.numbers, chk.numbers


def test_a_says_when_only_some_differences_are_significant():
    """β = 0.5 is clearly below β = 0 but within the noise of β = 1 (KL(π‖π_BoN) 0.020 vs 0.021, seeds ±0.02):
    the text must not say that all differences are significant."""
    noise = (-0.02, 0.02, -0.01, 0.01)
    recs = _jeffreys({0.0: 0.5, 0.5: 0.02, 1.0: 0.021}, {0.0: 0.5, 0.5: 0.02, 1.0: 0.5}, noise=noise)
    chk = claim_a(recs, exact=True)
    assert chk.status == NOT_REPRODUCED
    assert "some differences not significant at 95 %" in chk.numbers and "all differences" not in chk.numbers


def test_a_estimate_reads_the_last_n_a_record_names():
    """``algo.n=8 ... algo.n=4``: the run was BOND n = 4 (a later override wins), so the estimate is
    0.6 − 3·(−0.2) − log 4."""
    records = [
        synth_record(
            "bond_beta",
            b,
            s,
            {"kl/exact": 0.6, "quantile/log_mean": -0.2},
            estimator="exact_token",
            args=["algo=bond", "algo.n=8", f"algo.beta={b}", "algo.n=4"],
        )
        for b in (0.0, 0.5, 1.0)
        for s in SEEDS
    ]
    chk = claim_a(group_records(records), exact=False)
    assert math.isclose(chk.data.divergences["KL(π‖π_BoN) estimate"][0.5].mean, 0.6 + 3 * 0.2 - math.log(4))


@pytest.mark.parametrize(
    "path,saturated",
    [
        ([0.0, 8.0, 10.0], False),  # 20 % of its gain in the second half: still learning
        ([0.0, 9.0, 10.0], False),  # exactly 10 %: not under it
        ([0.0, 9.5, 10.0], True),  # 5 %
    ],
)
def test_b_fixed_n_saturates_only_under_a_tenth_of_its_gain_in_the_second_half(path, saturated):
    recs = [synth_record("bond", 2, s, {}, knob="algo.n", path=_reward_path(path)) for s in SEEDS]
    recs += [
        synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path([0.0, 1.0, 30.0]))
        for s in SEEDS
    ]
    chk = claim_b(group_records(recs), exact=True)
    assert chk.data.saturated is saturated and chk.data.fixed_total == 10.0
    assert chk.status == (REPRODUCED if saturated else NOT_REPRODUCED), chk.numbers
    assert ("fixed n=2 saturates" if saturated else "fixed n=2 does not saturate") in chk.numbers


def test_b_gains_are_read_at_the_last_evaluation_not_the_best():
    """Reward 0, 2, 5, 9, 6 at steps 0…40: the middle is step 20 (5), the last evaluation 6, so the
    second-half gain is 1 and the total 6 (the peak of 9 is not where training ended)."""
    rec = synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path([0.0, 2.0, 5.0, 9.0, 6.0]))
    assert late_gain(rec) == (1.0, 6.0)


def test_b_with_one_seed_an_equal_second_half_gain_is_not_more():
    fixed = [0.0, 0.6, 0.65, 0.66, 0.66]
    recs = [synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path(fixed))]
    recs.append(synth_record("iterative", 50, 0, {}, knob="algo.anchor_period", path=_reward_path(fixed)))
    chk = claim_b(group_records(recs), exact=True)
    assert chk.data.saturated and chk.status == NOT_REPRODUCED, chk.numbers


def test_c1_pairs_eta_with_a_swap_period_only_within_a_factor_1_5_of_1_over_eta():
    """η = 0.05 is 1/20: it pairs with a swap every 14 (η·M = 0.7, a factor 1.43) but not every 10 (a factor 2)."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]

    def recs(period):
        out = [
            synth_record("jbond_eta", 0.05, s, {"kl/exact": 2.0}, knob="algo.eta", path=_kl_reward_path(kls, 1.0))
            for s in SEEDS
        ]
        out += [
            synth_record(
                "jbond_swap", period, s, {"kl/exact": 2.0}, knob="algo.swap_period", path=_kl_reward_path(kls, 0.8)
            )
            for s in SEEDS
        ]
        return group_records(out)

    assert claim_c1(recs(10), exact=True).status == NOT_RUN
    paired = claim_c1(recs(14), exact=True)
    assert [(p.eta, p.period) for p in paired.data.pairs] == [(0.05, 14)]


def test_c1_with_one_seed_an_equal_reward_is_not_higher():
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    records = [
        synth_record("jbond_eta", 0.02, 0, {"kl/exact": 2.0}, knob="algo.eta", path=_kl_reward_path(kls, 1.0)),
        synth_record("jbond_swap", 50, 0, {"kl/exact": 2.0}, knob="algo.swap_period", path=_kl_reward_path(kls, 1.0)),
    ]
    assert claim_c1(group_records(records), exact=True).status == NOT_REPRODUCED


def test_c2_orders_gamma_by_value_not_by_its_text():
    """γ = 0.5, 2, 10 with final KL 2, 1, 0.5: decreasing in γ (as text, "10" sorts before "2")."""
    records = [
        synth_record("jbond_gamma", g, s, {"kl/exact": k + NOISE[s]}, knob="algo.gamma")
        for g, k in {0.5: 2.0, 2.0: 1.0, 10.0: 0.5}.items()
        for s in SEEDS
    ]
    chk = claim_c2(group_records(records), True)
    assert chk.status == REPRODUCED and chk.data.decreasing, chk.numbers
    assert list(chk.data.final_kl) == [0.5, 2.0, 10.0]


def test_c2_needs_the_ends_significantly_apart():
    """Seed means decrease in γ, but the largest γ's KL is within the noise of the smallest's: not reproduced."""
    noise = (-0.3, 0.3, -0.2, 0.2)
    records = [
        synth_record("jbond_gamma", g, s, {"kl/exact": k + noise[s]}, knob="algo.gamma")
        for g, k in {0.0: 2.0, 1.0: 1.95, 2.0: 1.9}.items()
        for s in SEEDS
    ]
    chk = claim_c2(group_records(records), True)
    assert chk.data.decreasing and chk.status == NOT_REPRODUCED, chk.numbers
    assert "not significant at 95 %" in chk.numbers


def test_e2_a_kl_at_the_bound_is_not_above_it():
    """Best-of-N's KL equals log n − (n−1)/n for a continuous reward: a KL at the bound stays within it."""
    recs = [synth_record("best_of_n", n, 0, {"kl/exact": math.log(n) - (n - 1) / n}, knob="algo.n") for n in (2, 4, 8)]
    chk = claim_e2(group_records(recs), True)
    assert chk.status == REPRODUCED and ">" not in chk.numbers, chk.numbers


# -- the plot panels ----------------------------------------------------------------------------------
SHIFT = 100.0


def _every_claim_records() -> list[dict]:
    """A small synthetic suite on which every claim has a verdict (none is "not run")."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    recs = []
    for s in SEEDS:
        for b, (to, frm) in {0.0: (0.05, 0.04), 0.5: (0.02, 0.02), 1.0: (0.04, 0.05)}.items():
            final = {"kl/to_bon": to + NOISE[s], "kl/from_bon": frm + NOISE[s]}
            recs.append(synth_record("bond_beta", b, s, final, args=["algo=bond", "algo.n=4", f"algo.beta={b}"]))
        fixed, improving = [0.0, 0.6, 0.65, 0.66, 0.66], [0.0, 0.6, 0.9, 1.3, 1.6]
        recs.append(synth_record("bond", 2, s, {}, knob="algo.n", path=_reward_path(fixed, NOISE[s])))
        recs.append(
            synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path(improving, NOISE[s]))
        )
        recs.append(
            synth_record(
                "jbond_eta", 0.02, s, {"kl/exact": 2.0}, knob="algo.eta", path=_kl_reward_path(kls, 1.0, NOISE[s])
            )
        )
        recs.append(
            synth_record(
                "jbond_swap",
                50,
                s,
                {"kl/exact": 2.0},
                knob="algo.swap_period",
                path=_kl_reward_path(kls, 0.8, NOISE[s]),
            )
        )
        for g, scale in {0.0: 1.0, 1.0: 0.5}.items():
            path = _kl_reward_path([k * scale for k in kls], 1.0, NOISE[s])
            final = {"kl/exact": 2.0 * scale + NOISE[s]}
            recs.append(synth_record("jbond_gamma", g, s, final, knob="algo.gamma", path=path))
        for beta in (0.001, 0.01, 0.1, 1.0):
            recs.append(synth_record("reinforce", beta, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 0.7, NOISE[s])))
    for n in (2, 4, 8):
        bound = math.log(n) - (n - 1) / n
        final = {"quantile/log_mean": -1 / n + 0.01, "kl/exact": bound - 0.01}
        recs.append(synth_record("best_of_n", n, 0, final, knob="algo.n"))
    return recs


def _shifted(x):
    """The evidence with every plotted quantity moved up by SHIFT: each estimate's mean and each
    training path's reward (column 2); steps, KLs and values stay."""
    if isinstance(x, Estimate):
        return replace(x, mean=x.mean + SHIFT)
    if is_dataclass(x):
        return replace(x, **{f.name: _shifted(getattr(x, f.name)) for f in fields(x)})
    if isinstance(x, dict):
        return {k: _shifted(v) for k, v in x.items()}
    if isinstance(x, list):  # a path: [(step, KL, reward), ...]
        return [(*p[:2], p[2] + SHIFT, *p[3:]) for p in x]
    if isinstance(x, tuple):
        return tuple(_shifted(v) for v in x)
    return x


THEORY_CURVES = {"e1": 1, "e2": 1}  # −1/n; log n − (n−1)/n: drawn from n alone


def _plotted(claim, check) -> list[np.ndarray]:
    """The y values of every artist the claim's panel draws (lines, markers, bars, bands), in order."""
    from rlhf_zoo.bench.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    claim.plot(ax, check)
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.lines]
    ys += [np.asarray([p.get_height()]) for p in ax.patches]
    ys += [np.concatenate([path.vertices[:, 1] for path in c.get_paths()]) for c in ax.collections]
    plt.close(fig)
    return ys


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.key for c in CLAIMS])
def test_each_panel_draws_its_verdicts_evidence(claim):
    """Move the check's numbers and every artist of the panel moves with them, except the theory
    curves: the panel draws the verdict's evidence, not numbers of its own."""
    check = claim.check(group_records(_every_claim_records()), exact=True)
    assert check.status == REPRODUCED, (claim.key, check.numbers)
    before = _plotted(claim, check)
    after = _plotted(claim, replace(check, data=_shifted(check.data)))
    assert before and len(after) == len(before)
    moved = [np.allclose(a, b + SHIFT, equal_nan=True) for a, b in zip(after, before, strict=True)]
    fixed = [np.allclose(a, b, equal_nan=True) for a, b in zip(after, before, strict=True)]
    assert all(m or f for m, f in zip(moved, fixed, strict=True)), f"({claim.key}): an artist moved partly"
    assert sum(fixed) == THEORY_CURVES.get(claim.key, 0), f"({claim.key}): drawn from numbers not its evidence's"


def test_jeffreys_panel_bars_are_the_verdicts_means():
    from rlhf_zoo.bench.plots import pyplot

    claim = Jeffreys()
    check = claim.check(group_records(_every_claim_records()), exact=True)
    fig, ax = pyplot().subplots()
    claim.plot(ax, check)
    heights = [p.get_height() for p in ax.patches]
    pyplot().close(fig)
    ev = check.data.divergences
    assert heights == [ev[name][b].mean for b in (0.0, 0.5, 1.0) for name in ("KL(π‖π_BoN)", "KL(π_BoN‖π)")]


def test_a_claim_not_run_draws_a_titled_panel_that_says_so():
    """Its panel was empty axes, read as a failed plot: it now says "not run", and draws nothing else."""
    from rlhf_zoo.bench.plots import pyplot

    for claim, check in zip(CLAIMS, check_all(None, exact=True).values(), strict=True):
        fig, ax = pyplot().subplots()
        claim.plot(ax, check)
        assert not ax.lines and not ax.patches and ax.get_title().startswith(f"({claim.key})")
        assert [t.get_text() for t in ax.texts] == ["not run"]
        pyplot().close(fig)


def test_claims_and_sweeps_name_each_other():
    """The sweeps a claim reads are the sweeps that say they serve it (suites.SWEEPS)."""
    for claim in CLAIMS:
        serving = {s.tag for s in SWEEPS if claim.key in s.claims}
        assert serving == set(claim.sweeps), claim.key
    assert {k for s in SWEEPS for k in s.claims} == {c.key for c in CLAIMS}


def test_a_estimate_reads_the_resolved_n_of_a_record_whose_arguments_do_not_name_it():
    """BOND n = 8 from an experiment file (``config=exp.yaml``): the arguments hold no ``algo.n=``, the record's
    settings (the resolved configuration) do. The estimate took BOND's default 4: 0.6 − 3·(−0.2) − log 4
    instead of 0.6 − 7·(−0.2) − log 8."""
    records = []
    for b in (0.0, 0.5, 1.0):
        for s in SEEDS:
            rec = synth_record(
                "bond_beta",
                b,
                s,
                {"kl/exact": 0.6, "quantile/log_mean": -0.2},
                estimator="exact_token",
                args=["config=exp.yaml", f"algo.beta={b}"],
            )
            rec["settings"] = {"algo.name": "bond", "algo.n": 8, "algo.beta": b}
            records.append(rec)
    chk = claim_a(group_records(records), exact=False)
    assert math.isclose(chk.data.divergences["KL(π‖π_BoN) estimate"][0.5].mean, 0.6 + 7 * 0.2 - math.log(8))


# -- verdicts on cases the mutation tests found unpinned ------------------------------------------------
def test_lower_a_tie_without_spread_is_neither_lower_nor_significant():
    """Equal seeds on both sides: the difference 0 lies on its interval [0, 0], which does not exclude 0."""
    assert lower([1.0, 1.0], [1.0, 1.0]) == (False, False)
    assert lower([1.0], [2.0]) == (True, None)  # one seed each: the means decide, no interval
    inf = float("inf")
    assert lower([inf], [inf]) == (False, False)  # both arms at +∞: neither is lower


def test_significance_note_says_one_seed_whenever_some_difference_has_no_interval():
    assert significance_note([None, True]).startswith("one seed")
    assert significance_note([True, True]).startswith("all differences significant")
    assert significance_note([True, False]).startswith("some differences not significant")


def test_e1_allows_a_deviation_of_0_05_from_minus_1_over_n_and_no_more():
    assert claim_e1(_bon(0.04, 0.0), True).status == REPRODUCED
    assert claim_e1(_bon(0.07, 0.0), True).status == NOT_REPRODUCED


def test_e1_and_e2_hold_at_every_n_not_only_the_last():
    """n = 2 alone is off (E[log p_≤] = −0.3 against −0.5; KL above the bound), n = 4 and 8 are fine."""
    recs = []
    for n in (2, 4, 8):
        bound = math.log(n) - (n - 1) / n
        off = n == 2
        final = {"quantile/log_mean": -1 / n + (0.2 if off else 0.0), "kl/exact": bound + (0.05 if off else -0.01)}
        recs.append(synth_record("best_of_n", n, 0, final, knob="algo.n"))
    e1 = claim_e1(group_records(recs), True)
    assert e1.status == NOT_REPRODUCED and "n=2: -0.300 vs -0.500 (+0.200)" in e1.numbers, e1.numbers
    e2 = claim_e2(group_records(recs), True)
    assert e2.status == NOT_REPRODUCED and f"n=2: {math.log(2) - 0.5 + 0.05:.3f} > 0.193" in e2.numbers, e2.numbers


def _c1_records(eta: float, period: int, ema_slope: float, swap_slope: float, seeds=SEEDS, final_kl=2.0):
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    out = [
        synth_record(
            "jbond_eta", eta, s, {"kl/exact": final_kl}, knob="algo.eta", path=_kl_reward_path(kls, ema_slope, NOISE[s])
        )
        for s in seeds
    ]
    out += [
        synth_record(
            "jbond_swap",
            period,
            s,
            {"kl/exact": final_kl},
            knob="algo.swap_period",
            path=_kl_reward_path(kls, swap_slope, NOISE[s]),
        )
        for s in seeds
    ]
    return out


def test_c1_a_pair_without_a_finite_final_kl_is_not_reproduced():
    chk = claim_c1(group_records(_c1_records(0.02, 50, 1.0, 0.8, final_kl=None)), exact=True)
    assert chk.status == NOT_REPRODUCED and "no finite final KL" in chk.numbers, chk.numbers


def test_c1_pairs_no_eta_beyond_a_factor_1_5():
    """η = 0.05 and a swap every 13: η·M = 0.65, a factor 1/0.65 = 1.54 from 1: unpaired, so not run."""
    assert claim_c1(group_records(_c1_records(0.05, 13, 1.0, 0.8)), exact=True).status == NOT_RUN


def test_c1_pairs_an_eta_exactly_a_factor_1_5_from_the_swap_period():
    """A factor of exactly 1.5, on either side, counts as within it: η·M = 0.03·50 = 1.5 and (1/75)·50 = 1/1.5
    pair; η·M = 0.031·50 = 1.55 does not."""
    for eta in (0.03, 1 / 75):
        chk = claim_c1(group_records(_c1_records(eta, 50, 1.0, 0.8)), exact=True)
        assert [(p.eta, p.period) for p in chk.data.pairs] == [(eta, 50)], eta
    assert claim_c1(group_records(_c1_records(0.031, 50, 1.0, 0.8)), exact=True).status == NOT_RUN


def test_c1_pairs_a_swap_period_with_the_closest_eta():
    """η = 0.025 (η·M = 1.25) and η = 0.02 (η·M = 1) both lie within a factor 1.5 of a swap every 50: 0.02 pairs."""
    recs = _c1_records(0.025, 50, 1.0, 0.8) + [r for r in _c1_records(0.02, 50, 1.0, 0.8) if "jbond_eta" in r["id"]]
    chk = claim_c1(group_records(recs), exact=True)
    assert [(p.eta, p.period) for p in chk.data.pairs] == [(0.02, 50)]


def test_c1_every_pair_must_favour_the_ema_anchor():
    """Swaps every 10 beat η = 0.1 (the first pair, whether by value or by appearance); η = 0.02 beats swaps every
    50: one pair against the claim, not reproduced."""
    recs = _c1_records(0.1, 10, 0.8, 1.0) + _c1_records(0.02, 50, 1.0, 0.8)
    chk = claim_c1(group_records(recs), exact=True)
    assert len(chk.data.pairs) == 2 and chk.status == NOT_REPRODUCED, chk.numbers


def test_one_seed_in_the_right_direction_reproduces_each_claim_with_the_means_compared():
    """With one seed there is no interval: the direction of the means decides (and the text says so), for (a),
    (b), (c2) and (d) alike."""
    jeff = _jeffreys({0.0: 0.05, 0.5: 0.02, 1.0: 0.04}, {0.0: 0.04, 0.5: 0.02, 1.0: 0.05}, noise=(0.0,) * 4)
    one = group_records([r for g in jeff.values() for grp in g.values() for r in grp.records if r["seed"] == 0])
    a = claim_a(one, exact=True)
    assert a.status == REPRODUCED and "one seed" in a.numbers, a.numbers

    fixed, improving = [0.0, 0.6, 0.65, 0.66, 0.66], [0.0, 0.6, 0.9, 1.3, 1.6]
    recs = [synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path(fixed))]
    recs.append(synth_record("iterative", 50, 0, {}, knob="algo.anchor_period", path=_reward_path(improving)))
    b = claim_b(group_records(recs), exact=True)
    assert b.status == REPRODUCED and "one seed" in b.numbers, b.numbers

    gam = [synth_record("jbond_gamma", g, 0, {"kl/exact": k}, knob="algo.gamma") for g, k in ((0.0, 2.0), (1.0, 1.0))]
    c2 = claim_c2(group_records(gam), True)
    assert c2.status == REPRODUCED and "no confidence interval" in c2.numbers, c2.numbers

    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    d_recs = [
        synth_record("jbond_gamma", 0.0, 0, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, 0.1)),
        synth_record("reinforce", 0.1, 0, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0)),
    ]
    d = claim_d(group_records(d_recs), exact=False)
    assert d.status == REPRODUCED and "(1 seed; no interval" in d.numbers, d.numbers  # said "1 seeds"


def test_d_is_not_judged_on_a_reinforce_other_than_the_claims():
    """A suite file's sweep tagged ``reinforce`` with 4 samples and the mean baseline was judged under "J-BOND lies
    above REINFORCE (2 samples, leave-one-out)"; it is now "not run", naming what the sweep ran."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]

    def records(settings):
        rf = synth_record("reinforce", 0.1, 0, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0))
        jb_path = _kl_reward_path(kls, 1.0, 0.1)
        jb = synth_record("jbond_gamma", 0.0, 0, {"kl/exact": 2.0}, knob="algo.gamma", path=jb_path)
        return group_records([jb, {**rf, "settings": {**rf.get("settings", {}), **settings}}])

    # and on no J-BOND but the default one (γ = 0): a suite of γ = 0.5 and 1 only is not judged on either
    kls_path = _kl_reward_path(kls, 1.0, 0.1)
    others = [synth_record("jbond_gamma", g, 0, {"kl/exact": 2.0}, knob="algo.gamma", path=kls_path) for g in (0.5, 1)]
    rf = synth_record("reinforce", 0.1, 0, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0))
    assert claim_d(group_records([*others, rf]), exact=False).status == NOT_RUN

    other = claim_d(records({"algo.samples": 4, "algo.baseline": "mean"}), exact=False)
    assert other.status == NOT_RUN and other.numbers.endswith("sweep reinforce ran algo.samples=4, algo.baseline=mean")
    assert claim_d(records({"algo.samples": 2, "algo.baseline": "loo"}), exact=False).status == REPRODUCED


def test_b_every_swap_period_must_gain_more_than_fixed_n():
    """Iterative BOND swapping every 10 saturates like fixed n = 2, every 50 keeps improving: not reproduced."""
    fixed, improving = [0.0, 0.6, 0.65, 0.66, 0.66], [0.0, 0.6, 0.9, 1.3, 1.6]
    recs = [synth_record("bond", 2, s, {}, knob="algo.n", path=_reward_path(fixed, NOISE[s])) for s in SEEDS]
    for period, path in ((10, fixed), (50, improving)):
        recs += [
            synth_record("iterative", period, s, {}, knob="algo.anchor_period", path=_reward_path(path, NOISE[s]))
            for s in SEEDS
        ]
    chk = claim_b(group_records(recs), exact=True)
    assert chk.data.saturated and chk.status == NOT_REPRODUCED, chk.numbers


def test_b_a_larger_mean_gain_inside_the_noise_is_not_more():
    """Fixed n = 2 gains 0.01 in its second half (every seed); iterative BOND 0.31, −0.27, 0.31, −0.27 (mean
    0.02): higher in the mean, but its Welch interval (half-width ≈ 3.18·0.335/2 ≈ 0.53) includes 0."""
    fixed = [0.0, 0.6, 0.65, 0.66, 0.66]
    recs = [synth_record("bond", 2, s, {}, knob="algo.n", path=_reward_path(fixed, NOISE[s])) for s in SEEDS]
    for s, o in zip(SEEDS, (0.3, -0.28, 0.3, -0.28), strict=True):
        path = _reward_path(fixed)
        path[-1]["reward/proxy"] += o
        recs.append(synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=path))
    chk = claim_b(group_records(recs), exact=True)
    assert chk.data.saturated and chk.data.iterative_late[50].mean == pytest.approx(0.02)
    assert chk.status == NOT_REPRODUCED and "some differences not significant" in chk.numbers, chk.numbers


def test_a_estimate_takes_bonds_default_n_when_no_record_names_one():
    """Arguments without ``algo.n`` and no settings: BOND's default n = 4, so 0.6 − 3·(−0.2) − log 4."""
    records = [
        synth_record(
            "bond_beta",
            b,
            s,
            {"kl/exact": 0.6, "quantile/log_mean": -0.2},
            estimator="exact_token",
            args=["algo=bond", f"algo.beta={b}"],
        )
        for b in (0.0, 0.5, 1.0)
        for s in SEEDS
    ]
    chk = claim_a(group_records(records), exact=False)
    assert math.isclose(chk.data.divergences["KL(π‖π_BoN) estimate"][0.5].mean, 0.6 + 3 * 0.2 - math.log(4))


def test_d_pairs_only_the_seeds_both_ran():
    """J-BOND ran seeds 0–3, REINFORCE 0–2: three paired seeds, each 0.1 above."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    recs = [
        synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, 0.1))
        for s in SEEDS
    ]
    recs += [synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0)) for s in range(3)]
    chk = claim_d(group_records(recs), exact=False)
    assert chk.data.reinforce[0.1].paired.values == pytest.approx((0.1,) * 3) and chk.status == REPRODUCED


def test_d_every_beta_rl_counts_not_only_the_last():
    """REINFORCE at β_RL = 0.001 lies above J-BOND (slope 1.2 against 1), at 0.1 below: not reproduced."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    recs = [
        synth_record(
            "jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, NOISE[s])
        )
        for s in SEEDS
    ]
    for beta, slope in ((0.001, 1.2), (0.1, 0.7)):
        recs += [
            synth_record("reinforce", beta, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, slope, NOISE[s]))
            for s in SEEDS
        ]
    chk = claim_d(group_records(recs), exact=False)
    assert chk.data.reinforce[0.1].min_diff > 0 > chk.data.reinforce[0.001].min_diff
    assert chk.status == NOT_REPRODUCED, chk.numbers


def test_d_a_beta_rl_with_no_common_kl_range_is_not_reproduced():
    """REINFORCE's evaluations have KL but no proxy reward: there is no KL value where both curves have a reward,
    so β_RL = 0.1 cannot be compared, and the claim, which is about every β_RL run, is not reproduced."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    recs = [
        synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, 0.1))
        for s in SEEDS
    ]
    no_reward = [{"step": 10 * i, "kl/exact": k} for i, k in enumerate(kls)]
    recs += [synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=no_reward) for s in SEEDS]
    chk = claim_d(group_records(recs), exact=False)
    assert "β_RL=0.1: no common KL range" in chk.numbers and chk.status == NOT_REPRODUCED, chk.numbers


def test_d_a_curve_below_by_exactly_the_tolerance_is_within_it():
    """ "J-BOND may fall below REINFORCE by at most 0.01": one seed, J-BOND's reward 0 and REINFORCE's 0.01 at every
    KL (exactly −0.01 apart) is within the tolerance; with no interval the curves decide."""
    kls = [0.0, 1.0, 2.0]
    recs = [
        synth_record("jbond_gamma", 0.0, 0, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 0.0)),
        synth_record("reinforce", 0.1, 0, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 0.0, 0.01)),
    ]
    chk = claim_d(group_records(recs), exact=False)
    assert chk.data.reinforce[0.1].min_diff == -0.01
    assert "min -0.010 (above)" in chk.numbers and chk.status == REPRODUCED, chk.numbers


def test_c1_and_b_do_not_call_a_significant_difference_against_the_claim_not_significant():
    """Swaps beat the EMA anchor (reward 2.0 against 1.6 at KL 2, seeds within 0.003), and fixed n = 2 gains more
    than iterative BOND in the second half (0.01 against −0.09, every seed): both differences lie far outside their
    95 % intervals. The verdicts are "not reproduced"; the notes must not say "not significant"."""
    c1 = claim_c1(group_records(_c1_records(0.02, 50, 0.8, 1.0)), exact=True)
    assert c1.status == NOT_REPRODUCED and "all differences significant" in c1.numbers, c1.numbers
    fixed = [0.0, 0.6, 0.65, 0.66, 0.66]
    recs = [synth_record("bond", 2, s, {}, knob="algo.n", path=_reward_path(fixed, NOISE[s])) for s in SEEDS]
    falling = [0.0, 0.6, 0.65, 0.66, 0.56]
    recs += [
        synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path(falling, NOISE[s]))
        for s in SEEDS
    ]
    b = claim_b(group_records(recs), exact=True)
    assert b.status == NOT_REPRODUCED and "all differences significant" in b.numbers, b.numbers


def test_c1_matched_kl_is_the_smaller_final_kl_when_the_swaps_stop_first():
    """Swaps end at KL 1.5, the EMA anchor at 2.0: rewards are read at 1.5 (at 2.0 the swaps have none)."""
    ema = _kl_reward_path([0.0, 0.5, 1.0, 1.5, 2.0], 1.0)
    swap = _kl_reward_path([0.0, 0.5, 1.0, 1.5], 0.8)
    records = [
        synth_record("jbond_eta", 0.02, 0, {"kl/exact": 2.0}, knob="algo.eta", path=ema),
        synth_record("jbond_swap", 50, 0, {"kl/exact": 1.5}, knob="algo.swap_period", path=swap),
    ]
    chk = claim_c1(group_records(records), exact=True)
    pair = chk.data.pairs[0]
    assert pair.kl == 1.5 and (pair.ema.mean, pair.swap.mean) == pytest.approx((1.5, 1.2))
    assert chk.status == REPRODUCED, chk.numbers


def test_b_one_evaluation_has_no_second_half_and_a_zero_total_gain_is_no_learning():
    """A run evaluated once has no gain (NaN, not 0). One seed of BOND n = 2 that climbs to 0.5 and falls back to
    its start gained 0 in total: it did not learn, so it did not saturate, however much it lost in its second
    half; an improving iterative BOND does not reproduce the claim against it."""
    once = synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path([0.3]))
    assert all(math.isnan(x) for x in late_gain(once))
    recs = [synth_record("bond", 2, 0, {}, knob="algo.n", path=_reward_path([0.0, 0.5, 0.0]))]
    recs.append(synth_record("iterative", 50, 0, {}, knob="algo.anchor_period", path=_reward_path([0.0, 1.0, 2.0])))
    chk = claim_b(group_records(recs), exact=True)
    assert chk.data.fixed_total == 0.0 and not chk.data.saturated
    assert chk.status == NOT_REPRODUCED and "does not learn" in chk.numbers, chk.numbers


def test_d_two_seeds_have_an_interval_and_a_wide_one_is_not_above_zero():
    """Two seeds, J-BOND 0.3 and −0.2 above REINFORCE: mean 0.05, s = 0.354, half-width 12.706·0.354/√2 = 3.18;
    the interval includes 0 (two seeds are not "no interval"), so not reproduced. Every seed reaches every KL
    value compared, and the text does not say otherwise."""
    kls = [0.0, 0.5, 1.0, 1.5, 2.0]
    recs = [
        synth_record("jbond_gamma", 0.0, s, {"kl/exact": 2.0}, knob="algo.gamma", path=_kl_reward_path(kls, 1.0, o))
        for s, o in ((0, 0.3), (1, -0.2))
    ]
    recs += [synth_record("reinforce", 0.1, s, {"kl/exact": 2.0}, path=_kl_reward_path(kls, 1.0)) for s in (0, 1)]
    chk = claim_d(group_records(recs), exact=False)
    pair = chk.data.reinforce[0.1].paired
    assert pair.mean == pytest.approx(0.05) and pair.half == pytest.approx(12.7062 * 0.5 / math.sqrt(2) / math.sqrt(2))
    assert chk.status == NOT_REPRODUCED and "interval not above 0" in chk.numbers, chk.numbers
    assert "a seed's paths reach" not in chk.numbers


def test_a_seed_at_infinite_kl_is_not_left_out_of_a_verdict():
    """β = 0.5's fourth seed diverged to KL(π‖π_BoN) = +∞ (a fresh record keeps it; mean_ci makes the mean +∞ and
    the row shows ∞): β = 0.5 is not lower than β = 0 and β = 1, so not reproduced. Comparing the three finite
    seeds alone called it significantly lower."""
    inf = float("inf")
    assert lower([0.02, 0.02, 0.02, inf], [0.05] * 4) == (False, False)
    assert lower([0.05] * 4, [0.02, inf]) == (True, False)  # lower, but no finite interval to call it significant
    recs = _jeffreys({0.0: 0.05, 0.5: 0.02, 1.0: 0.04}, {0.0: 0.04, 0.5: 0.02, 1.0: 0.05})
    recs["bond_beta"][0.5].records[3]["summary"]["kl/to_bon"] = inf
    chk = claim_a(recs, exact=True)
    assert "β=0.5 ∞" in chk.numbers and chk.status == NOT_REPRODUCED, chk.numbers


def test_e1_an_infinite_mean_is_measured_not_missing():
    """n = 4's E[log p̂_≤] is −∞ (a Best-of-4 sample below every reference sample: p̂_≤ = 0, kept by a fresh
    record): that is a measurement infinitely far below −1/4, not an n the pool cannot measure, so not
    reproduced."""
    groups = _bon(0.0, 0.0)
    groups["best_of_n"][4].records[0]["summary"]["quantile/log_mean"] = -float("inf")
    chk = claim_e1(groups, True)
    assert "n=4: not measured" not in chk.numbers and "n=4: −∞" in chk.numbers, chk.numbers
    assert chk.status == NOT_REPRODUCED and 4 in chk.data.log_mean


def test_a_band_keeps_the_steps_every_seed_evaluated():
    """A seed stopped after step 10 while the other reached 20: the band spans steps 0 and 10, each the mean of
    both seeds (step 20 has one seed's value only, and is not the seeds' mean)."""
    from rlhf_zoo.bench.claims.base import Band

    paths = {0: [(0, 0.0), (10, 1.0), (20, 2.0)], 1: [(0, 0.0), (10, 3.0)]}
    records = [
        synth_record("bond", 2, s, {"reward/proxy": p[-1][1]}, path=[{"step": t, "reward/proxy": r} for t, r in p])
        for s, p in paths.items()
    ]
    band = Band.of(group_records(records)["bond"][2], "reward/proxy")
    assert band.steps == (0, 10)
    assert [e.values for e in band.estimates] == [(0.0, 0.0), (1.0, 3.0)]
    assert [e.mean for e in band.estimates] == [0.0, 2.0]
