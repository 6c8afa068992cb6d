"""The renderer: a markdown page with the provenance header, the tables and the plots, from records only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlhf_zoo.bench.records import write_json_atomic
from rlhf_zoo.bench.render import render_suite
from rlhf_zoo.errors import UserError
from tests.bench.helpers import synth_record, write_records

SEEDS = (0, 1, 2)


def _path(kl: float, reward: float, gold: float, seed: int) -> list[dict[str, float]]:
    return [
        {
            "step": 10 * i,
            "kl/exact": kl * i / 3,
            "reward/proxy": reward * i / 3 + 0.01 * seed,
            "reward/gold": gold * i / 3,
            "win_rate/gold": 0.5 + 0.1 * i,
        }
        for i in range(4)
    ]


def _rows(text: str) -> list[list[str]]:
    """Every markdown table row as its stripped cells."""
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("|--")
    ]


def _records() -> list[dict]:
    recs = []
    for s in SEEDS:
        for order, (tag, knob, frontier, points) in enumerate(
            [
                ("best_of_n", "algo.n", "sweep", {2: (0.19, 0.6), 4: (0.63, 1.1)}),
                (
                    "reinforce",
                    "algo.beta",
                    "sweep",
                    {0.001: (3.0, 2.0), 0.01: (2.5, 1.9), 0.1: (1.5, 1.5), 1.0: (0.5, 1.0)},
                ),
                ("jbond_gamma", "algo.gamma", "paths", {0.0: (2.0, 1.9), 1.0: (1.0, 1.3)}),
            ]
        ):
            for value, (kl, reward) in points.items():
                final = {
                    "kl/exact": kl,
                    "reward/proxy": reward + 0.1 * s,
                    "reward/gold": 0.8 * reward,
                    "win_rate/gold": 0.7,
                    "length/mean": 3.5,
                    "frontier/gap": 0.1,
                    "quantile/log_mean": -1 / value if tag == "best_of_n" else -0.3,
                }
                recs.append(
                    synth_record(
                        tag,
                        value,
                        s,
                        final,
                        knob=knob,
                        frontier=frontier,
                        order=order,
                        path=_path(kl, reward + 0.1 * s, 0.8 * reward, s),
                    )
                )
    return recs


def test_page_from_synthetic_records(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    write_records(out / "exact", _records())
    write_json_atomic(
        out / "exact" / "bench.json",
        {"command": "rlhf-zoo bench suite=exact", "wall_s": 123.4, "ran": 24, "points": 24, "jobs": 2},
    )
    write_json_atomic(
        out / "exact" / "oracle.json",
        {
            "frontier": [
                {"beta": 1 / (k + 1), "kl": 0.5 * k, "reward_proxy": 0.7 * k, "reward_gold": 0.5 * k} for k in range(8)
            ],
            "best_of_n": [
                {
                    "n": n,
                    "kl": 0.2 * n,
                    "kl_bound": 0.25 * n,
                    "reward_proxy": 0.3 * n,
                    "reward_gold": 0.2 * n,
                    "log_quantile": -1 / n,
                }
                for n in (1, 2, 4)
            ],
        },
    )
    page = render_suite("exact", out, docs)
    text = page.read_text()
    # the header: command, commit, date, hardware, seeds, wall time
    for needle in (
        "`rlhf-zoo bench suite=exact`",
        "0123456789",
        "2026-01-02",
        "CPU (testbox, 2 cores, 1 threads)",
        "123 s wall for 24 of 24 points in 2 process(es)",
        "exact, by enumeration",
    ):
        assert needle in text, needle
    # a provenance line above every table
    assert text.count("*`rlhf-zoo bench suite=exact` · commit `0123456789` · 2026-01-02") >= 5
    # per-objective table: mean ± 95 % t interval over 3 seeds (t = 4.303, s = 0.1 → ± 0.248)
    rows = _rows(text)
    assert ["0.1", "3", "1.600 ± 0.248"] in [r[:3] for r in rows]
    assert "proxy reward" in text and "gold reward" in text and "gold win rate" in text and "gen. tokens" in text
    assert "KL(π‖π_ref) [exact]" in text
    # the frontier table: the oracle at KL = 1 is 1.4 (linear), REINFORCE's sweep at KL = 1 is 1.25 + 0.1·seed
    assert ["seeds", "0, 1, 2"] in rows
    assert ["optimal π*_β (oracle)", "exact", "0.350", "0.700", "1.400", "2.800", "4.200"] in rows
    proxy_table = text.split("**Proxy reward**")[1].split("**Gold reward**")[0]
    row = next(r for r in _rows(proxy_table) if r[0] == "objective reinforce")
    assert row[1:] == ["sweep over beta", "—", "1.100 ± 0.248", "1.350 ± 0.248", "1.800 ± 0.248", "2.100 ± 0.248"]
    assert "training path" in text
    # the verdicts: exact has records, quick says not run
    verdicts = _rows(text.split("## The BOND paper's claims")[1].split("## Reward at matched KL")[0])
    assert verdicts[0] == ["claim", "metric", "suite", "verdict", "numbers"]
    assert [r[2] for r in verdicts[1:]] == ["exact", "quick"] * 7
    assert all(r[3] == "not run" for r in verdicts[1:] if r[2] == "quick")
    claim_d = next(i for i, r in enumerate(verdicts) if r[0].startswith("**(d)**"))
    # J-BOND's path (slope 0.95) lies above REINFORCE at β_RL = 0.001 (slope 0.67), below it at β_RL = 1 (slope 2)
    assert verdicts[claim_d][3] == "**not reproduced**"
    assert "β_RL=0.001: J-BOND − REINFORCE" in verdicts[claim_d][4] and "(not above)" in verdicts[claim_d][4]
    # the rule under the table names the interval each verdict reads: (d)'s is paired, not Welch's
    rule = text.split("## Reward at matched KL")[0].rsplit("|", 1)[1]
    assert "Welch" in rule and "Student-t interval of the per-seed differences" in rule
    # plots, referenced and small
    for name in ("reward_vs_kl", "frontier_gap", "overoptimisation", "claims"):
        png = docs / "exact" / f"{name}.png"
        assert png.is_file() and png.stat().st_size < 200_000, name
        assert f"(exact/{name}.png)" in text


def test_a_seed_whose_metric_is_nan_or_missing_is_counted_beside_the_mean(tmp_path):
    """A diverged seed (NaN) or a record without the metric was left out of a cell's mean silently, under a
    row whose seeds column counts every seed: the cell now says how many seeds its mean is over."""
    recs = _records()
    diverged = next(r for r in recs if r["id"].startswith("reinforce-0.1-") and r["seed"] == 2)
    diverged["summary"]["reward/proxy"] = float("nan")
    lacking = next(r for r in recs if r["id"].startswith("reinforce-0.1-") and r["seed"] == 1)
    del lacking["summary"]["reward/gold"]
    write_records(tmp_path / "runs" / "exact", recs)
    rows = _rows(render_suite("exact", tmp_path / "runs", tmp_path / "docs").read_text())
    # proxy of seeds 0 and 1: 1.5 and 1.6 (t = 12.71, s = 0.0707 → ± 0.635); gold of seeds 0 and 2: 1.2
    assert ["0.1", "3", "1.550 ± 0.635 (2/3)", "1.200 ± 0.000 (2/3)", "1.500 ± 0.000"] in [r[:5] for r in rows]
    assert ["0.01", "3", "2.000 ± 0.248", "1.520 ± 0.000", "2.500 ± 0.000"] in [r[:5] for r in rows]  # whole


def test_language_model_page_and_missing_records(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = [
        synth_record("reinforce", b, 0, {"kl/exact": k, "reward/proxy": r}, suite="quick", estimator="exact_token")
        for b, k, r in ((0.01, 2.0, 0.5), (0.1, 1.0, 0.3))
    ]
    write_records(out / "quick", recs)
    text = render_suite("quick", out, docs).read_text()
    assert "exact-token estimator" in text and "(no interval with one seed)" in text
    assert "gold reward" not in text.split("## Every objective")[1]  # no gold: no column
    assert "overoptimisation.png" not in text and not (docs / "quick" / "frontier_gap.png").exists()
    assert "the dashed grey curve Best-of-N over n." in text and "optimal frontier (π*_β over β)" not in text
    assert [r[3] for r in _rows(text) if len(r) == 5 and r[2] == "exact"] == ["not run"] * 7
    with pytest.raises(UserError, match="no finished points"):
        render_suite("full", out, docs)


def test_render_ignores_unfinished_points(tmp_path):
    out = tmp_path / "runs"
    write_records(out / "exact", [synth_record("reinforce", 0.1, 0, {"kl/exact": 1.0, "reward/proxy": 1.0})])
    half = out / "exact" / "reinforce-1.0-s0"
    half.mkdir()
    (half / "metrics.jsonl").write_text(json.dumps({"step": 0, "kl/exact": 9.0}) + "\n")
    text = render_suite("exact", out, tmp_path / "docs").read_text()
    assert ["runs", "1 (1 configurations × 1 seed(s))"] in _rows(text)
    assert "9.000" not in text


def test_each_objective_panel_spans_its_own_kl_range(tmp_path, monkeypatch):
    """An objective that runs to KL 30 widens the overview panel but not another objective's panel,
    whose range is its own paths and final intervals (times 1.08)."""
    from rlhf_zoo.bench import plots
    from rlhf_zoo.bench.records import group_records
    from tests.bench.helpers import synth_record

    def record(tag, knob, kl_end):
        final = {"kl/exact": kl_end, "reward/proxy": 0.5}
        path = [{"step": 0, "kl/exact": 0.0, "reward/proxy": 0.1}, {"step": 10, **final}]
        return synth_record(tag, 0.01, 0, final, path=path, knob=knob)

    recs = [record("ppo_lite", "algo.beta", 30.0), record("jbond_gamma", "algo.gamma", 3.0)]
    saved = {}
    monkeypatch.setattr(plots, "save", lambda fig, p: saved.setdefault("fig", fig) and p)
    plots.reward_vs_kl(group_records(recs), {}, tmp_path / "r.png")
    limits = {ax.get_title(): ax.get_xlim() for ax in saved["fig"].axes if ax.get_title()}
    assert limits.pop("final points of every objective") == pytest.approx((0, 1.08 * 30.0))
    assert sorted(limits.values()) == [pytest.approx((0, 1.08 * 3.0)), pytest.approx((0, 1.08 * 30.0))]


def test_a_suite_run_in_pieces_names_every_command_behind_its_records(tmp_path):
    """Records finished by several bench commands (a suite run in pieces): the header lists each with the
    points it finished, and no table's provenance line passes one piece's command off as the whole."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    for r in recs:
        r["bench_command"] = f"rlhf-zoo bench suite=exact seeds={r['seed']}"
    write_records(out / "exact", recs)
    write_json_atomic(out / "exact" / "bench.json", {"command": "rlhf-zoo bench suite=exact seeds=2", "wall_s": 9.0})
    text = render_suite("exact", out, docs).read_text()
    per_seed = len(recs) // len(SEEDS)
    listed = ", ".join(f"`rlhf-zoo bench suite=exact seeds={s}` ({per_seed} points)" for s in sorted(SEEDS))
    assert ["command", listed] in _rows(text)
    assert text.count(f"*{len(SEEDS)} bench commands (in the header) · commit") >= 5
    assert "*`rlhf-zoo bench suite=exact seeds=2` ·" not in text


def test_a_point_resumed_elsewhere_names_both_machines_and_days(tmp_path):
    """A point resumed on another machine on a later day (its meta.json keeps the first start and lists
    the resume under ``resumes``): the header's hardware and dates name both starts, not the first only."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    recs[0]["meta"] = {
        **recs[0]["meta"],
        "resumes": [{"hardware": "GPU (NVIDIA H100, 1 device)", "started": "2026-01-05T00:00:00+0000", "step": 4}],
    }
    write_records(out / "exact", recs)
    rows = _rows(render_suite("exact", out, docs).read_text())
    hardware = next(r[1] for r in rows if r[0] == "hardware")
    assert "CPU (testbox, 2 cores, 1 threads)" in hardware and "GPU (NVIDIA H100, 1 device)" in hardware
    assert next(r[1] for r in rows if r[0] == "date") == "2026-01-02 … 2026-01-05"


def test_the_versions_row_names_every_version_the_points_ran_with(tmp_path):
    """Points run with different library versions (a CPU and a GPU build of torch, a run that loaded no
    transformers, a record that kept no versions): the header names each version with its points, not the
    most common set alone; with one version set it is that set, as before."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    assert len(recs) > 3
    cpu = {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.23.0"}
    for r in recs:
        r["meta"] = {**r["meta"], "versions": cpu}
    write_records(out / "exact", recs)
    rows = _rows(render_suite("exact", out, docs).read_text())
    assert ["versions", "python 3.11.7, torch 2.13.0+cpu, transformers 5.23.0"] in rows

    recs[0]["meta"]["versions"] = {"python": "3.11.7", "torch": "2.13.0+cu126"}
    recs[1]["meta"] = {k: v for k, v in recs[1]["meta"].items() if k != "versions"}
    write_records(out / "exact", recs)
    rows = _rows(render_suite("exact", out, docs).read_text())
    n = len(recs) - 2  # the points with the CPU set
    assert [
        "versions",
        f"python 3.11.7; torch 2.13.0+cpu ({n} points), 2.13.0+cu126 (1 point); "
        f"transformers 5.23.0 ({n} points), not loaded (1 point); not recorded for 1 point",
    ] in rows


def test_a_plot_stopped_while_written_leaves_the_previous_one(tmp_path, monkeypatch):
    """A plot is written through a temporary file: a render stopped while it writes one (here the PNG encoder
    fails after its first bytes) leaves the previous plot whole and no temporary file, not a truncated PNG."""
    from PIL import Image

    from rlhf_zoo.bench.plots import pyplot, save

    path = tmp_path / "reward_vs_kl.png"
    fig, _ = pyplot().subplots()
    save(fig, path)
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG")

    original = Image.Image.save

    def stopped(self, fp, *args, **kwargs):
        if self.mode != "P":  # matplotlib's own PNG, not yet the palette one written out
            return original(self, fp, *args, **kwargs)
        (open(fp, "wb") if isinstance(fp, (str, Path)) else fp).write(b"\x89PN")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", stopped)
    fig, _ = pyplot().subplots()
    with pytest.raises(KeyboardInterrupt):
        save(fig, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_each_column_and_matched_kl_table_reads_its_own_metric(tmp_path):
    """Under each header its own metric: KL(π‖π_BoN) is ``kl/to_bon`` and KL(π_BoN‖π) ``kl/from_bon``; the gold
    table at matched KL reads the gold reward, of a sweep's final points and of the oracle; a sweep of two knob
    values is a curve; a budget only some seeds' curves reach says how many."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    for r in recs:
        if r["id"].startswith("best_of_n"):
            r["summary"].update({"kl/to_bon": 0.03, "kl/from_bon": 0.07})
    # seed 2's REINFORCE sweep ends at KL 2.5 (its β_RL = 0.001 point moves from KL 3 to 2): KL = 3 is reached by 2 of 3
    short = next(r for r in recs if r["id"] == "reinforce-0.001-s2")
    short["summary"]["kl/exact"] = 2.0
    write_records(out / "exact", recs)
    oracle = {"frontier": [{"kl": 0.5 * k, "reward_proxy": 0.7 * k, "reward_gold": 0.5 * k} for k in range(8)]}
    write_json_atomic(out / "exact" / "oracle.json", oracle)
    text = render_suite("exact", out, docs).read_text()

    bon = _rows(text.split("(`best_of_n`, over n)")[1].split("###")[0])
    cols = dict(zip(bon[0], bon[1], strict=True))
    assert (cols["KL(π‖π_BoN)"], cols["KL(π_BoN‖π)"]) == ("0.030 ± 0.000", "0.070 ± 0.000")

    def at_budget(title: str, name: str, budget: str) -> str:
        header, *rows = _rows(text.split(f"**{title}**")[1].split("![")[0].split("**")[0])
        return dict(zip(header, next(r for r in rows if r[0] == name), strict=True))[budget]

    # REINFORCE's gold is 0.8 × its proxy without the seed's shift: final points (0.5, 0.8) and (1.5, 1.2)
    assert at_budget("Gold reward", "objective reinforce", "KL = 1") == "1.000 ± 0.000"
    assert at_budget("Gold reward", "π*_β of the proxy (oracle)", "KL = 1") == "1.000"  # gold 0.5·k at KL 0.5·k
    assert at_budget("Proxy reward", "optimal π*_β (oracle)", "KL = 1") == "1.400"
    # Best-of-N n = 2, 4 at KL 0.19, 0.63, proxy 0.6, 1.1 (+ 0.1 per seed): at KL 0.25, 0.6 + 0.5·0.06/0.44 + 0.1
    assert at_budget("Proxy reward", "objective best_of_n", "KL = 0.25") == "0.768 ± 0.248"
    # KL = 3 is seed 0's and 1's β_RL = 0.001 point: proxy 2.0 and 2.1 (t = 12.706 for 1 degree of freedom)
    assert at_budget("Proxy reward", "objective reinforce", "KL = 3") == "2.050 ± 0.635 (2/3)"


def test_the_verdicts_of_another_suite_read_its_records_as_estimates(tmp_path):
    """The exact page's verdict rows for quick check quick's records as a task without an oracle: its claim (a)
    reads the KL(π‖π_BoN) estimate, not the exact divergences the quick records do not have."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    write_records(out / "exact", _records())
    quick = [
        synth_record(
            "bond_beta",
            b,
            s,
            {"kl/exact": 0.6, "quantile/log_mean": -0.2},
            suite="quick",
            estimator="exact_token",
            args=["algo=bond", "algo.n=4", f"algo.beta={b}", f"seed={s}"],
        )
        for b in (0.0, 0.5, 1.0)
        for s in SEEDS
    ]
    write_records(out / "quick", quick)
    text = render_suite("exact", out, docs).read_text()
    verdicts = _rows(text.split("## The BOND paper's claims")[1].split("## Reward at matched KL")[0])
    first = next(i for i, r in enumerate(verdicts) if r[0].startswith("**(a)**"))
    row_a = next(r for r in verdicts[first:] if r[2] == "quick")
    assert "KL(π‖π_BoN) estimate: β=0 -0.186 ± 0.000" in row_a[4] and "not measurable" in row_a[4]


def test_a_training_paths_gold_at_matched_kl_is_its_gold_reward(tmp_path):
    """J-BOND γ = 0's path reaches KL 2 with gold 0.8·1.9 at its end, linearly: gold 0.76 at KL 1 (every seed)."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    write_records(out / "exact", _records())
    text = render_suite("exact", out, docs).read_text()
    header, *rows = _rows(text.split("**Gold reward**")[1].split("![")[0])
    row = dict(zip(header, next(r for r in rows if r[0] == "objective jbond_gamma, gamma=0"), strict=True))
    assert row["curve"] == "training path" and row["KL = 1"] == "0.760 ± 0.000"


def test_the_final_table_puts_each_reward_under_its_name():
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import final_table

    recs = [
        synth_record("reinforce", 0.1, s, {"kl/exact": 1.0 + s, "reward/proxy": 2.0, "reward/gold": 0.5}) for s in SEEDS
    ]
    header, row = _rows(final_table(group_records(recs)))
    cells = dict(zip(header, row, strict=True))
    # KL 1, 2, 3: mean 2, s = 1, t = 4.303 for 2 degrees of freedom
    assert cells["KL(π‖π_ref)"] == f"2.000 ± {4.302653 / 3**0.5:.3f}"
    assert (cells["proxy reward"], cells["gold reward"]) == ("2.000 ± 0.000", "0.500 ± 0.000")


def test_a_sweep_of_one_value_has_no_curve_to_match_at_a_kl_budget():
    """A curve over a sweep's knob needs two of its values. REINFORCE at β = 0.1 (KL 1, reward 1) and β = 1
    (KL 2, reward 3) reads reward 2 at KL 1.5; BOND at one n, though its point lies at KL 1.5, is no curve."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import frontier_table

    recs = [
        synth_record("reinforce", beta, s, {"kl/exact": kl, "reward/proxy": reward})
        for beta, kl, reward in ((0.1, 1.0, 1.0), (1.0, 2.0, 3.0))
        for s in range(3)
    ]
    recs += [synth_record("bond", 4, s, {"kl/exact": 1.5, "reward/proxy": 5.0}, knob="algo.n") for s in range(3)]
    header, *rows = _rows(frontier_table(group_records(recs), [1.5], {}))
    assert header == ["objective", "curve", "KL = 1.5"]
    assert rows == [["objective reinforce", "sweep over beta", "2.000 ± 0.000"]]


def test_a_record_at_a_planned_points_id_but_of_another_run_is_not_counted_as_planned(tiny_exact_suite):
    """Only a record of the point's own run (its arguments, but for settings without effect) is the planned
    point's; one left at its id by another setting (``train.lr=0.5``) is another record."""
    from rlhf_zoo.bench.render import planned_count
    from rlhf_zoo.bench.suites import expand

    planned = expand(tiny_exact_suite, seeds=[0])
    raw = [{"id": p.id, "args": [*p.args, "train.progress=true"]} for p in planned]
    assert planned_count(raw, planned) == f"{len(planned)} of the {len(planned)} planned points have records"
    raw[0]["args"] = [*planned[0].args, "train.lr=0.5"]
    assert planned_count(raw, planned) == (
        f"{len(planned) - 1} of the {len(planned)} planned points have records, and 1 other record(s) "
        "(other seeds, sweeps or settings) are shown"
    )


def _drawn(monkeypatch, draw, *args):
    """The figure a plot function draws (not saved)."""
    from rlhf_zoo.bench import plots

    saved = {}
    monkeypatch.setattr(plots, "save", lambda fig, p: saved.setdefault("fig", fig) and p)
    draw(*args)
    return saved["fig"]


def _same(line, xs, ys) -> bool:
    """Whether a drawn line goes through exactly the points (xs, ys)."""
    import numpy as np

    x, y = np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)
    return x.shape == y.shape == (len(xs),) and np.allclose(x, xs) and np.allclose(y, ys)


def _finals(recs, tag, key):
    """Per knob value (in the order of the sweep's values), the seed mean of a final metric, by hand."""
    values = sorted({r["memberships"][0]["value"] for r in recs if r["memberships"][0]["sweep"] == tag})
    return [
        sum(
            r["summary"][key] for r in recs if r["memberships"][0]["sweep"] == tag and r["memberships"][0]["value"] == v
        )
        / len(SEEDS)
        for v in values
    ]


def test_the_plots_draw_each_metric_where_their_axes_say(tmp_path, monkeypatch):
    """reward_vs_kl: final points at (final KL(π‖π_ref), final proxy) and seed-mean paths of the proxy;
    frontier_gap: the gap with its 95 % interval; overoptimisation: gold against KL and against proxy."""
    import numpy as np

    from rlhf_zoo.bench import plots
    from rlhf_zoo.bench.records import group_records

    recs = _records()
    for r in recs:
        r["summary"]["frontier/gap"] = 0.1 + 0.01 * r["seed"]  # s = 0.01 over 3 seeds
    groups = group_records(recs)
    kl, proxy, gold = (_finals(recs, "reinforce", k) for k in ("kl/exact", "reward/proxy", "reward/gold"))

    fig = _drawn(monkeypatch, plots.reward_vs_kl, groups, {}, tmp_path / "r.png")
    assert "objective best_of_n" not in [ax.get_title() for ax in fig.axes]  # drawn as the Best-of-N curve
    overview = next(ax for ax in fig.axes if ax.get_title() == "final points of every objective")
    line = next(ln for ln in overview.lines if ln.get_label() == "objective reinforce")
    assert np.allclose(line.get_xdata(), kl) and np.allclose(line.get_ydata(), proxy)
    panel = next(ax for ax in fig.axes if ax.get_title() == "objective jbond_gamma")
    # γ = 0's seed-mean path: KL 2·i/3, proxy (1.9 + 0.1·seed)·i/3 + 0.01·seed over seeds 0, 1, 2
    assert any(_same(ln, [2.0 * i / 3 for i in range(4)], [2.0 * i / 3 + 0.01 for i in range(4)]) for ln in panel.lines)

    fig = _drawn(monkeypatch, plots.frontier_gap, groups, tmp_path / "g.png")
    ax = fig.axes[0]
    bars = next(c for c in ax.containers if c.get_label() == "objective reinforce")
    assert np.allclose(bars.lines[0].get_ydata(), 0.11)
    half = 4.302653 * 0.01 / 3**0.5  # t for 2 degrees of freedom · s / √n
    (segments,) = [b.get_segments() for b in bars.lines[2]]
    assert np.allclose([s[1][1] - s[0][1] for s in segments], 2 * half)

    fig = _drawn(monkeypatch, plots.overoptimisation, groups, {}, tmp_path / "o.png")
    left, right = fig.axes
    finals_left = next(ln for ln in left.lines if ln.get_label() == "objective reinforce")
    assert np.allclose(finals_left.get_xdata(), kl) and np.allclose(finals_left.get_ydata(), gold)
    finals_right = next(ln for ln in right.lines if ln.get_label() == "objective reinforce")
    assert np.allclose(finals_right.get_xdata(), proxy) and np.allclose(finals_right.get_ydata(), gold)
    # the paths on the right: gold against proxy along training (J-BOND γ = 0: gold 0.8·1.9·i/3)
    assert any(
        _same(ln, [2.0 * i / 3 + 0.01 for i in range(4)], [0.8 * 1.9 * i / 3 for i in range(4)]) for ln in right.lines
    )


def _header(text: str) -> dict[str, str]:
    """The page's provenance header (the table above the claims) as name → value."""
    return {r[0]: r[1] for r in _rows(text.split("## The BOND paper's claims")[0]) if len(r) == 2}


def test_the_header_counts_runs_configurations_and_time(tmp_path):
    """24 records of 8 configurations (2 + 4 + 2 knob values) × 3 seeds, 1.5 s each: the runs line, the commit line
    of one commit, the wall time of a bench that ran only some points, and the date of one day."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    write_records(out / "exact", _records())
    bench = {"command": "rlhf-zoo bench suite=exact", "wall_s": 123.4, "ran": 10, "points": 24, "jobs": 2}
    write_json_atomic(out / "exact" / "bench.json", bench)
    header = _header(render_suite("exact", out, docs).read_text())
    assert header["runs"] == "24 (8 configurations × 3 seed(s))"
    assert header["git commit"] == "records from commit 0123456789 (all 24 points)"
    assert header["wall time"] == (
        "last bench: 123 s wall for 10 of 24 points in 2 process(es) (the others were already finished); "
        "sum of run times 36 s"
    )
    assert (header["date"], header["seeds"]) == ("2026-01-02", "0, 1, 2")
    write_json_atomic(out / "exact" / "bench.json", {**bench, "ran": 24})
    header = _header(render_suite("exact", out, docs).read_text())
    assert header["wall time"] == "last bench: 123 s wall for 24 of 24 points in 2 process(es); sum of run times 36 s"
    # seeds that differ between configurations: their range, not a product of the count of configurations and of
    # all seeds (a walkthrough's page said 18 runs = 8 configurations × 3 seeds)
    last = max(SEEDS)
    kept = [r for r in _records() if r["seed"] != last or r["id"].startswith("jbond_gamma")]
    shutil.rmtree(out / "exact")
    write_records(out / "exact", kept)
    header = _header(render_suite("exact", out, docs).read_text())
    assert header["runs"] == f"{len(kept)} (8 configurations, {len(SEEDS) - 1} to {len(SEEDS)} seeds each)"


@pytest.mark.parametrize(
    ("bench", "said"),
    [
        # killed before its end (kill -9 after its last record, a power loss), or running now: bench.json as written
        # when it started; the page gave an earlier bench's wall time, or failed on the nulls
        (
            {"started": "2026-01-02T03:04:05+0000", "wall_s": None, "ran": None, "complete": None},
            "last bench (started 2026-01-02T03:04:05+0000) stopped before its end (killed?) or is running: its wall "
            "time is not recorded",
        ),
        # stopped (Ctrl-C, a failed run) after 4 points, 10 finished before it: not "the others were already finished"
        (
            {"wall_s": 123.4, "ran": 4, "complete": False},
            "last bench: 123 s wall for 4 of 24 points in 2 process(es) (10 already finished; it stopped before the "
            "others)",
        ),
    ],
)
def test_the_wall_time_of_a_bench_that_stopped_before_its_end_is_not_told_as_a_finished_ones(
    tmp_path, monkeypatch, bench, said
):
    from rlhf_zoo.bench import claims, plots

    def no_png(fig, path):  # what is asked of is the header: drawing the plots would take seconds
        plots.pyplot().close(fig)
        return path

    monkeypatch.setattr(plots, "save", no_png)
    monkeypatch.setattr(claims, "save", no_png)
    out = tmp_path / "runs"
    write_records(out / "exact", _records()[:2])
    base = {"command": "rlhf-zoo bench suite=exact", "points": 24, "jobs": 2, "skipped": 10}
    write_json_atomic(out / "exact" / "bench.json", {**base, **bench})
    header = _header(render_suite("exact", out, tmp_path / "docs").read_text())
    assert header["wall time"] == f"{said}; sum of run times 3 s"


def test_the_date_spans_the_day_a_point_finished(tmp_path):
    """A point started on 2026-01-02 and finished on 2026-01-04: the page's dates run to the 4th."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    recs[0]["finished"] = "2026-01-04T00:10:00+0000"
    write_records(out / "exact", recs)
    assert _header(render_suite("exact", out, docs).read_text())["date"] == "2026-01-02 … 2026-01-04"


def test_an_objective_table_has_a_row_per_knob_value_in_order(tmp_path):
    """REINFORCE's table: β_RL ascending (1.0 written as 1), three seeds, length with 2 decimals, wall time with 1,
    and no commit column when every record comes from one commit."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    write_records(out / "exact", _records())
    text = render_suite("exact", out, docs).read_text()
    header, *rows = _rows(text.split("(`reinforce`, over beta)")[1].split("###")[0])
    assert "commit" not in header
    cells = [dict(zip(header, r, strict=True)) for r in rows]
    assert [(c["beta"], c["seeds"]) for c in cells] == [("0.001", "3"), ("0.01", "3"), ("0.1", "3"), ("1", "3")]
    # proxy 2.0, 1.9, 1.5, 1.0 plus 0.1 per seed: s = 0.1, t = 4.303 for 2 degrees of freedom → ± 0.248
    assert [c["proxy reward"] for c in cells] == ["2.100 ± 0.248", "2.000 ± 0.248", "1.600 ± 0.248", "1.100 ± 0.248"]
    assert (cells[0]["length"], cells[0]["wall s"]) == ("3.50 ± 0.00", "1.5 ± 0.0")


def test_records_of_several_commits_are_counted_and_named_per_row(tmp_path):
    """J-BOND's 6 records from another commit than the other 18: the header counts each commit's points (most
    first), every provenance line names both, and each objective table's commit column its own rows' commits."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    for r in recs:
        if r["id"].startswith("jbond_gamma"):
            r["meta"] = {**r["meta"], "git_commit": "fedcba9876543210fedc"}
    write_records(out / "exact", recs)
    text = render_suite("exact", out, docs).read_text()
    assert _header(text)["git commit"] == "records from commit 0123456789 (18 points), fedcba9876 (6 points)"
    assert text.count("· commit `0123456789, fedcba9876` ·") >= 5
    for tag, knob, commit in (("reinforce", "beta", "0123456789"), ("jbond_gamma", "gamma", "fedcba9876")):
        header, *rows = _rows(text.split(f"(`{tag}`, over {knob})")[1].split("###")[0])
        assert header[-1] == "commit" and [r[-1] for r in rows] == [commit] * len(rows), tag


def test_a_column_some_seeds_lack_stays_with_its_count(tmp_path):
    """REINFORCE β_RL = 0.1's seed 1 without ``frontier/gap``: the gap column stays, its cell over the other two."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = _records()
    del next(r for r in recs if r["id"] == "reinforce-0.1-s1")["summary"]["frontier/gap"]
    write_records(out / "exact", recs)
    text = render_suite("exact", out, docs).read_text()
    header, *rows = _rows(text.split("(`reinforce`, over beta)")[1].split("###")[0])
    cells = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert (cells["0.1"]["gap to frontier"], cells["1"]["gap to frontier"]) == ("0.100 ± 0.000 (2/3)", "0.100 ± 0.000")


def test_a_suite_without_budgets_is_matched_at_quantiles_of_its_kl(tmp_path):
    """A suite that is not a built-in one (no KL budgets): the budgets are its final KLs' quartiles, to 2 decimals.
    KL 0.123, 0.456, 0.789: the 1st quartile is 0.123 → 0.12, the median and 3rd quartile 0.456 → 0.46."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    recs = [
        synth_record("reinforce", b, 0, {"kl/exact": kl, "reward/proxy": r}, suite="mine")
        for b, kl, r in ((1.0, 0.123, 1.0), (0.1, 0.456, 2.0), (0.01, 0.789, 3.0))
    ]
    write_records(out / "mine", recs)
    text = render_suite("mine", out, docs).read_text()
    header, *rows = _rows(text.split("**Proxy reward**")[1].split("![")[0])
    assert header == ["objective", "curve", "KL = 0.12", "KL = 0.46"]
    # 0.12 is below the sweep's first point; at 0.46: 2 + (0.46 − 0.456) / (0.789 − 0.456) = 2.012 (one seed)
    assert ["objective reinforce", "sweep over beta", "—", "2.012"] in rows


def test_records_of_a_sweep_the_suite_does_not_have_are_named(tiny_exact_suite):
    """A record of a sweep the suite no longer has (``old_tag``) beside every planned point's: counted as another
    record and named with its sweep; the planned sweeps' records are not."""
    from rlhf_zoo.bench.render import planned_count
    from rlhf_zoo.bench.suites import expand

    planned = expand(tiny_exact_suite, seeds=[0])
    raw = [{"id": p.id, "args": p.args, "memberships": list(p.memberships)} for p in planned]
    raw.append({"id": "old-s0", "args": ["algo=bond", "seed=0"], "memberships": [{"sweep": "old_tag", "value": 1}]})
    assert planned_count(raw, planned) == (
        f"{len(planned)} of the {len(planned)} planned points have records, and 1 other record(s) (other seeds, "
        "sweeps or settings) are shown; records of sweeps the suite does not have (a tag dropped?): old_tag (1)"
    )
    # a piece run with only=: the suite's other sweeps are its own, not named as dropped
    only = [p for p in planned if p.memberships[0]["sweep"] == planned[0].memberships[0]["sweep"]]
    text = planned_count(raw, only, tiny_exact_suite)
    assert text.endswith("records of sweeps the suite does not have (a tag dropped?): old_tag (1)"), text


def test_the_final_table_counts_each_rows_seeds():
    """Two knob values, three seeds of one and two of the other: each row's seeds column is its own count."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import final_table

    recs = [synth_record("reinforce", b, s, {"kl/exact": 1.0, "reward/proxy": 2.0}) for b in (0.1, 1.0) for s in SEEDS]
    recs = [r for r in recs if r["id"] != "reinforce-1.0-s2"]
    header, *rows = _rows(final_table(group_records(recs)))
    assert [(r[1], r[2]) for r in rows] == [("beta=0.1", "3"), ("beta=1", "2")]


def test_render_refuses_seeds_of_one_point_from_two_code_versions(tmp_path):
    """Seed 2 of REINFORCE β_RL = 0.1 from another code version than seeds 0 and 1: no page pooling them."""
    out = tmp_path / "runs"
    recs = _records()
    next(r for r in recs if r["id"] == "reinforce-0.1-s2")["code_version"] = "bbbbbbbbbbbb"
    write_records(out / "exact", recs)
    with pytest.raises(UserError, match="cannot pool the records of reinforce beta=0.1: .* code versions"):
        render_suite("exact", out, tmp_path / "docs")
    assert not (tmp_path / "docs" / "exact.md").exists()


def test_a_training_path_is_read_where_it_first_reaches_a_budget(tmp_path):
    """A path that overshoots (KL 0, 2, 1, 3 with proxy 0, 2, 5, 6) reaches KL 1 first between its first two
    evaluations, at proxy 1: not 5, where it comes back to KL 1 later (nor a curve sorted by KL)."""
    out = tmp_path / "runs"
    path = [
        {"step": 10 * i, "kl/exact": kl, "reward/proxy": r}
        for i, (kl, r) in enumerate([(0, 0), (2, 2), (1, 5), (3, 6)])
    ]
    rec = synth_record(
        "jbond_gamma", 0.0, 0, {"kl/exact": 3.0, "reward/proxy": 6.0}, knob="algo.gamma", frontier="paths", path=path
    )
    write_records(out / "exact", [rec])
    text = render_suite("exact", out, tmp_path / "docs").read_text()
    header, *rows = _rows(text.split("**Proxy reward**")[1].split("![")[0])
    row = dict(zip(header, next(r for r in rows if r[0] == "objective jbond_gamma, gamma=0"), strict=True))
    assert (row["curve"], row["KL = 1"], row["KL = 2"]) == ("training path", "1.000", "2.000")


def test_the_command_is_the_records_not_the_last_bench_invocations(tmp_path):
    """Records made by ``rlhf-zoo bench suite=exact`` and the page redrawn with ``render_only=true`` (the last
    invocation, in bench.json): the header names the command that made the records."""
    out = tmp_path / "runs"
    write_records(out / "exact", _records())
    write_json_atomic(out / "exact" / "bench.json", {"command": "rlhf-zoo bench suite=exact render_only=true"})
    text = render_suite("exact", out, tmp_path / "docs").read_text()
    assert _header(text)["command"] == "`rlhf-zoo bench suite=exact`"


def test_records_that_name_no_command_are_told_as_unknown_not_as_the_last_bench_invocations(tmp_path):
    """Records written without their command (an older record): the last bench's command need not be the
    one that made them, and the header does not pass it off as theirs."""
    out = tmp_path / "runs"
    recs = _records()
    for r in recs:
        r.pop("bench_command", None)
    write_records(out / "exact", recs)
    write_json_atomic(out / "exact" / "bench.json", {"command": "rlhf-zoo bench suite=exact seeds=7"})
    text = render_suite("exact", out, tmp_path / "docs").read_text()
    assert _header(text)["command"] == "`unknown`"
    assert "seeds=7" not in text


def test_each_claim_is_stated_once_above_its_suites_rows(tmp_path):
    """The verdict table: a claim's statement and metric on its first suite's row (exact), blank on the next (quick)."""
    from rlhf_zoo.bench.claims import CLAIMS

    out = tmp_path / "runs"
    write_records(out / "exact", _records())
    text = render_suite("exact", out, tmp_path / "docs").read_text()
    _, *verdicts = _rows(text.split("## The BOND paper's claims")[1].split("## Reward at matched KL")[0])
    assert [(bool(r[0]), bool(r[1])) for r in verdicts] == [(True, True), (False, False)] * len(CLAIMS)
    assert all(r[0].startswith(f"**({c.key})**") for r, c in zip(verdicts[::2], CLAIMS, strict=True))


def test_a_suite_without_records_is_not_run_and_says_where_its_records_were_looked_for(tmp_path):
    """The verdict table beside the exact suite's: quick, without records, says where they were looked for and the
    command that makes them; full has rows only once it has a folder of records (its hours of GPU are optional)."""
    from rlhf_zoo.bench.claims import CLAIMS, check_all
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import verdict_table

    out, records = tmp_path / "runs", tmp_path / "records"
    checks = check_all(group_records(_records()), True)

    def rows() -> list[list[str]]:
        return _rows(verdict_table(out, "exact", checks, records))[1:]

    note = "no records under {0}/{1} or {2}/{1}: `rlhf-zoo bench suite={1}`"
    assert [r[2] for r in rows()] == ["exact", "quick"] * len(CLAIMS)
    for r in rows()[1::2]:
        assert r[3:] == ["not run", note.format(out, "quick", records)]
    (records / "full").mkdir(parents=True)
    assert [r[2] for r in rows()] == ["exact", "quick", "full"] * len(CLAIMS)
    assert {tuple(r[3:]) for r in rows()[2::3]} == {("not run", note.format(out, "full", records))}


def test_a_suite_run_in_two_pieces_names_both_commands():
    """Two bench commands behind the records (one per seed): both are named with their points, and the provenance
    lines say there are two, rather than passing the first for the command of every record."""
    from rlhf_zoo.bench.render import provenance

    recs = [synth_record("best_of_n", 2, seed, {"kl/exact": 1.0}, knob="algo.n") for seed in (0, 1, 1)]
    recs[2] = synth_record("best_of_n", 4, 1, {"kl/exact": 1.0}, knob="algo.n")
    for r in recs:
        r["bench_command"] = f"rlhf-zoo bench suite=exact seeds={r['seed']}"
    prov = provenance(recs)
    assert (
        prov["command"]
        == "`rlhf-zoo bench suite=exact seeds=1` (2 points), `rlhf-zoo bench suite=exact seeds=0` (1 point)"
    )
    assert prov["command_line"] == "2 bench commands (in the header)"


def test_a_flag_where_a_metric_belongs_is_no_number_in_the_tables():
    """A summary value ``true`` (a flag stored under a metric's name) is not read as 1: a column that only such
    values fill is left out, as one no record has."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import objective_table

    recs = [
        synth_record("best_of_n", 2, seed, {"kl/exact": 1.0, "reward/gold": True}, knob="algo.n") for seed in (0, 1)
    ]
    table = objective_table(group_records(recs)["best_of_n"])
    assert "KL(π‖π_ref)" in table and "gold reward" not in table


def test_a_point_that_recorded_empty_versions_is_counted_as_not_recorded():
    """``versions: {}`` in a run's meta.json says nothing about its packages: it is counted among the points that
    recorded no versions, not as a point that loaded none of them."""
    from rlhf_zoo.bench.render import provenance

    recs = [synth_record("best_of_n", n, 0, {"kl/exact": 1.0}, knob="algo.n") for n in (2, 4)]
    recs[1]["meta"] = {**recs[1]["meta"], "versions": {}}
    assert provenance(recs)["versions"] == "python 3.11.7, torch 2.13.0; not recorded for 1 point"


def test_a_row_whose_seeds_come_from_two_commits_names_both():
    """One knob value whose seed 1 was run at a later commit: its row's commit column names both commits, not the
    first seed's alone."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import objective_table

    recs = [synth_record("best_of_n", 2, seed, {"kl/exact": 1.0}, knob="algo.n") for seed in (0, 1)]
    recs[1].update(git_commit="f" * 40, git_dirty=False)
    header, row = _rows(objective_table(group_records(recs)["best_of_n"], commits=True))
    assert header[-1] == "commit" and row[-1] == "0123456789, ffffffffff"


def test_a_seed_that_lacks_a_sweep_value_is_matched_on_the_values_it_has():
    """A suite in progress: seed 1 has REINFORCE at β = 0.1 and 1 but not yet at 0.01. Its curve is the two
    points it has (no KeyError), so at KL = 1.5 both seeds count: seed 0 reads 2.0 (half-way from 1 at KL 1 to 3 at
    KL 2), seed 1 reads 1.5 (half-way from 1 to 2)."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import frontier_table
    from rlhf_zoo.bench.stats import fmt_seeds_ci

    finals = {  # seed: {β: (KL, proxy reward)}
        0: {0.01: (3.0, 4.0), 0.1: (2.0, 3.0), 1.0: (1.0, 1.0)},
        1: {0.1: (2.0, 2.0), 1.0: (1.0, 1.0)},
    }
    recs = [
        synth_record("reinforce", v, s, {"kl/exact": kl, "reward/proxy": r})
        for s, points in finals.items()
        for v, (kl, r) in points.items()
    ]
    (row,) = _rows(frontier_table(group_records(recs), [1.5], {}))[1:]
    assert row[-1] == fmt_seeds_ci([2.0, 1.5])
