"""The claims' verdicts on synthetic records: reproduced when the numbers say so, not otherwise."""

from __future__ import annotations

import math

from rlhf_zoo.bench.records import group_records
from rlhf_zoo.bench.verdicts import (
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    check_all,
    claim_a,
    claim_b,
    claim_c1,
    claim_c2,
    claim_d,
    claim_e1,
    claim_e2,
)
from tests.bench.helpers import synth_record

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
    assert chk.data["KL(π‖π_BoN)"][0.5] == sum(0.02 + NOISE[s] for s in SEEDS) / len(SEEDS)
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
    assert "not measurable" in chk.numbers and list(chk.data) == ["KL(π‖π_BoN) estimate"]
    # identical kl/exact and quantiles at every β: the estimates tie, so β = 0.5 is not lower
    assert chk.status == NOT_REPRODUCED
    expected = 0.6 - 3 * (-0.2) - math.log(4)
    assert math.isclose(chk.data["KL(π‖π_BoN) estimate"][0.5], expected)


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
    assert math.isclose(chk.data["iterative_50"], 1.6 - 0.9, abs_tol=1e-9)
    # iterative that saturates too: not reproduced
    recs2 = [r for r in recs if r["memberships"][0]["sweep"] == "bond"]
    recs2 += [
        synth_record("iterative", 50, s, {}, knob="algo.anchor_period", path=_reward_path(fixed, NOISE[s]))
        for s in SEEDS
    ]
    assert claim_b(group_records(recs2), exact=True).status == NOT_REPRODUCED


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
    assert good.status == REPRODUCED and list(good.data) == ["0.02/50"], good.numbers
    assert claim_c1(recs(0.8, 1.0), exact=True).status == NOT_REPRODUCED
    only_swaps = group_records([synth_record("jbond_swap", 50, 0, {"kl/exact": 1.0})])
    assert claim_c1(only_swaps, exact=True).status == NOT_RUN


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
    assert below.status == NOT_REPRODUCED and below.data[1.0][0] < 0 and below.data[0.1][0] > 0
    partial = claim_d(recs(0.9, betas=(0.01, 0.1)), exact=False)
    assert partial.status == REPRODUCED and "0.001, 1} not run" in partial.numbers


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
    assert claim_e2(_bon(0.0, 0.0), True).status == REPRODUCED
    over = claim_e2(_bon(0.0, 0.05), True)
    assert over.status == NOT_REPRODUCED and "> " in over.numbers
    assert set(claim_e1(_bon(0.0, 0.0), True).data) == {2, 4, 8}  # n = 1 is not part of the claim


def test_no_records_means_not_run():
    assert {c.status for c in check_all(None, exact=False)} == {NOT_RUN}
