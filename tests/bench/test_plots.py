"""The benchmark plots read back from matplotlib's artists: which points each panel draws, on which axes, with
which labels, error bars, colours and ranges, and which PNG files are written. Every expected number is worked
out by hand from the synthetic records below, not by the plot code's helpers."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlhf_zoo.bench import plots
from rlhf_zoo.bench.records import group_records
from tests.bench.helpers import synth_record

SEEDS = (0, 1, 2)
T2 = 4.302653  # the two-sided 95 % Student-t quantile for 2 degrees of freedom
KL_HALF = T2 * 0.1 / math.sqrt(3)  # the final KL's half-width where the seeds' KL is spread by ±0.1
PROXY_HALF = T2 * 0.3 / math.sqrt(3)  # the final proxy's half-width where the seeds' proxy is spread by ±0.3

# sweep tag → (knob, frontier kind, order, {value: (final KL, final proxy, final gold) of the middle seed})
SWEEPS: dict[str, tuple[str, str, int, dict[Any, tuple[float, float, float]]]] = {
    "best_of_n": ("algo.n", "sweep", 0, {2: (0.3, 0.5, 0.45), 4: (0.9, 0.9, 0.7)}),
    "reinforce": ("algo.beta", "sweep", 1, {0.1: (2.0, 1.5, 1.0), 1.0: (0.5, 0.8, 0.6)}),
    "jbond_gamma": ("algo.gamma", "paths", 2, {0.0: (1.0, 1.2, 1.1), 1.0: (2.5, 1.6, 0.9)}),
}


def _records(gold: bool = True, gap: bool = False) -> list[dict[str, Any]]:
    """Three seeds per point. REINFORCE's seeds spread its final KL by ±0.1 and its proxy by ±0.3 around the
    middle seed's (s = 0.1 and 0.3); the other sweeps' seeds agree. Each path runs from 0 at step 0 to the final."""
    recs = []
    for tag, (knob, frontier, order, points) in SWEEPS.items():
        for value, (kl, proxy, gold_reward) in points.items():
            for s in SEEDS:
                spread = (s - 1) if tag == "reinforce" else 0
                final = {"kl/exact": kl + 0.1 * spread, "reward/proxy": proxy + 0.3 * spread}
                if gold:
                    final["reward/gold"] = gold_reward
                if gap:
                    final["frontier/gap"] = 0.2 + 0.05 * s
                rec = synth_record(tag, value, s, final, knob=knob, frontier=frontier, order=order)
                recs.append(rec)
    return recs


ORACLE = {
    # unsorted, and beyond every panel's range at KL 50
    "frontier": [
        {"kl": kl, "reward_proxy": 0.7 * kl, "reward_gold": 0.4 * kl} for kl in (3.0, 0.0, 1.0, 2.0, 2.6, 50.0)
    ],
    # unsorted, one point beyond the range (KL 40) and one without a reward (NaN)
    "best_of_n": [
        {"n": 4, "kl": 0.8, "reward_proxy": 0.95, "reward_gold": 0.75},
        {"n": 1, "kl": 0.0, "reward_proxy": 0.1, "reward_gold": 0.05},
        {"n": 2, "kl": 0.35, "reward_proxy": 0.6, "reward_gold": 0.4},
        {"n": 8, "kl": 1.2, "reward_proxy": math.nan, "reward_gold": 0.8},
        {"n": 64, "kl": 40.0, "reward_proxy": 2.0, "reward_gold": 1.0},
    ],
}
# The largest training-path KL is J-BOND γ = 1's 2.5 (not its sweep's first value): the overview spans 1.08 × 2.5.
OVERVIEW_XMAX = 1.08 * 2.5
# REINFORCE's panel: its paths reach KL 2.1 (seed 2 of β = 0.1), its final interval 2.0 + KL_HALF, which is wider.
REINFORCE_XMAX = 1.08 * (2.0 + KL_HALF)
JBOND_XMAX = 1.08 * 2.5


def _drawn(monkeypatch: pytest.MonkeyPatch, draw: Callable[..., Any], *args: Any) -> Any:
    """The figure a plot function draws, taken where it would be saved; None when it draws none."""
    saved: dict[str, Any] = {}

    def keep(fig: Any, path: Path) -> Path:
        saved["fig"] = fig
        return path

    monkeypatch.setattr(plots, "save", keep)
    out = draw(*args)
    return saved.get("fig") if out is not None else None


def _xy(line: Any) -> tuple[list[float], list[float]]:
    return list(np.asarray(line.get_xdata(), float)), list(np.asarray(line.get_ydata(), float))


def _pts(xs: list[float], ys: list[float]) -> tuple[Any, Any]:
    """What :func:`_xy` of a line through exactly the points (xs, ys) equals (to float rounding)."""
    return pytest.approx(xs), pytest.approx(ys)


def _line(ax: Any, label: str) -> Any:
    (line,) = [ln for ln in ax.lines if ln.get_label() == label]
    return line


def _panel(fig: Any, title: str) -> Any:
    (ax,) = [ax for ax in fig.axes if ax.get_title() == title]
    return ax


def _has_path(ax: Any, xs: list[float], ys: list[float]) -> bool:
    return any(
        len(ln.get_xdata()) == len(xs) and np.allclose(_xy(ln)[0], xs) and np.allclose(_xy(ln)[1], ys)
        for ln in ax.lines
    )


def test_the_overview_draws_each_objectives_final_means_and_the_oracles_references(monkeypatch):
    """The overview: each objective's seed-mean final (KL, proxy), joined where it is a sweep, and the oracle's
    frontier and Best-of-N curve sorted by KL, cut at the panel's range, without the point that has no reward."""
    fig = _drawn(monkeypatch, plots.reward_vs_kl, group_records(_records()), ORACLE, Path("r.png"))
    ax = _panel(fig, "final points of every objective")
    assert ax.get_xlim() == pytest.approx((0, OVERVIEW_XMAX))
    sweep = _line(ax, "objective reinforce")
    assert _xy(sweep) == _pts([2.0, 0.5], [1.5, 0.8])  # β = 0.1, 1 in the sweep's order
    assert (sweep.get_marker(), sweep.get_linestyle()) == ("o", "-")
    paths = _line(ax, "objective jbond_gamma")
    assert _xy(paths) == _pts([1.0, 2.5], [1.2, 1.6])
    assert (paths.get_marker(), paths.get_linestyle()) == ("o", "None")  # separate runs: not joined
    assert "objective best_of_n" not in [ln.get_label() for ln in ax.lines]
    # the oracle's frontier up to KL 2.7 (of 3, 0, 1, 2, 2.6, 50), by KL: proxy 0.7·KL
    assert _xy(_line(ax, "optimal π*_β")) == _pts([0.0, 1.0, 2.0, 2.6], [0.0, 0.7, 1.4, 1.82])
    # the oracle's Best-of-N (not the records' n = 2, 4), n = 1, 2, 4; n = 8 has no reward, n = 64 is beyond
    assert _xy(_line(ax, "Best-of-N (over n)")) == _pts([0.0, 0.35, 0.8], [0.1, 0.6, 0.95])


def test_without_an_oracle_the_best_of_n_curve_is_the_records_and_there_is_no_frontier(monkeypatch):
    fig = _drawn(monkeypatch, plots.reward_vs_kl, group_records(_records()), {}, Path("r.png"))
    ax = _panel(fig, "final points of every objective")
    assert _xy(_line(ax, "Best-of-N (over n)")) == _pts([0.3, 0.9], [0.5, 0.9])
    assert "optimal π*_β" not in [ln.get_label() for ax in fig.axes for ln in ax.lines]


def test_an_objectives_panel_draws_each_values_mean_path_and_final_interval(monkeypatch):
    """REINFORCE's panel: per β the seed-mean proxy path and the final point with its 95 % intervals on both axes
    (KL ± KL_HALF, proxy ± PROXY_HALF), labelled ``beta=<value>`` and coloured from the start of viridis to 0.9;
    its range is its own (paths and intervals), and so is the oracle's frontier on it."""
    import matplotlib.pyplot as plt

    fig = _drawn(monkeypatch, plots.reward_vs_kl, group_records(_records()), ORACLE, Path("r.png"))
    ax = _panel(fig, "objective reinforce")
    assert ax.get_xlim() == pytest.approx((0, REINFORCE_XMAX))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("KL(π‖π_ref) [nats]", "proxy reward")
    assert _has_path(ax, [0.0, 2.0], [0.0, 1.5]) and _has_path(ax, [0.0, 0.5], [0.0, 0.8])
    bars = {c.get_label(): c for c in ax.containers}
    assert sorted(bars) == ["beta=0.1", "beta=1"]  # 1.0 written as the page writes it
    for label, (x, y), colour in (("beta=0.1", (2.0, 1.5), 0.0), ("beta=1", (0.5, 0.8), 0.9)):
        point, _, (first, second) = bars[label].lines
        assert _xy(point) == _pts([x], [y])
        assert np.allclose(point.get_color(), plt.get_cmap("viridis")(colour))
        segments = [s for c in (first, second) for s in c.get_segments()]
        widths = sorted(abs(s[1][0] - s[0][0]) for s in segments)  # one horizontal bar, one vertical
        heights = sorted(abs(s[1][1] - s[0][1]) for s in segments)
        assert widths == pytest.approx([0, 2 * KL_HALF]) and heights == pytest.approx([0, 2 * PROXY_HALF])
    # the frontier up to 2.43 on this panel: not the overview's point at 2.6
    assert _xy(_line(ax, "optimal π*_β"))[0] == pytest.approx([0.0, 1.0, 2.0])
    assert _panel(fig, "objective jbond_gamma").get_xlim() == pytest.approx((0, JBOND_XMAX))


@pytest.mark.parametrize(("objectives", "shape"), [(1, (1, 2)), (3, (2, 2)), (4, (2, 3))])
def test_the_panels_are_laid_out_in_two_columns_up_to_four_then_three(monkeypatch, objectives, shape):
    """1 + 1 and 1 + 3 panels fill 2 columns; 1 + 4 take 3 columns and 2 rows, the sixth cell blank."""
    recs = [synth_record(f"sweep{i}", 0.1, 0, {"kl/exact": 1.0, "reward/proxy": 1.0}) for i in range(objectives)]
    fig = _drawn(monkeypatch, plots.reward_vs_kl, group_records(recs), {}, Path("r.png"))
    rows, cols = shape
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (rows, cols) and len(fig.axes) == rows * cols
    assert [ax.axison for ax in fig.axes] == [True] * (1 + objectives) + [False] * (rows * cols - 1 - objectives)


def test_overoptimisation_draws_gold_against_kl_and_against_proxy(monkeypatch):
    """Left: the seed-mean finals' gold against KL and the oracle's frontier in gold (no Best-of-N curve), over
    the overview's KL range. Right: the finals' gold against their proxy, the paths' gold against their proxy,
    the frontier as (proxy, gold) and the diagonal over the seed-mean paths' proxy range (0 to J-BOND γ = 1's 1.6)."""
    fig = _drawn(monkeypatch, plots.overoptimisation, group_records(_records()), ORACLE, Path("o.png"))
    left, right = fig.axes
    assert left.get_xlim() == pytest.approx((0, OVERVIEW_XMAX))
    assert _xy(_line(left, "objective reinforce")) == _pts([2.0, 0.5], [1.0, 0.6])
    frontier = [0.0, 1.0, 2.0, 2.6]
    assert _xy(_line(left, "π*_β (proxy-optimal)")) == _pts(frontier, [0.4 * k for k in frontier])
    assert "Best-of-N (over n)" not in [ln.get_label() for ln in left.lines]
    assert _xy(_line(right, "objective reinforce")) == _pts([1.5, 0.8], [1.0, 0.6])
    assert _xy(_line(right, "objective jbond_gamma")) == _pts([1.2, 1.6], [1.1, 0.9])
    assert _xy(_line(right, "π*_β (proxy-optimal)")) == _pts([0.7 * k for k in frontier], [0.4 * k for k in frontier])
    assert _has_path(right, [0.0, 1.5], [0.0, 1.0])  # REINFORCE β = 0.1 along training
    assert _xy(_line(right, "gold = proxy")) == _pts([0.0, 1.6], [0.0, 1.6])
    assert (left.get_xlabel(), left.get_ylabel(), right.get_xlabel()) == (
        "KL(π‖π_ref) [nats]",
        "gold reward",
        "proxy reward",
    )


def test_frontier_gap_draws_each_finals_gap_with_its_interval_about_a_zero_line(monkeypatch):
    """Gaps 0.2, 0.25, 0.3 over the seeds: mean 0.25, half-width T2 · 0.05 / √3, at each point's mean KL."""
    fig = _drawn(monkeypatch, plots.frontier_gap, group_records(_records(gap=True)), Path("g.png"))
    (ax,) = fig.axes
    bars = {c.get_label(): c for c in ax.containers}
    point, _, (vertical,) = bars["objective reinforce"].lines
    assert _xy(point) == _pts([2.0, 0.5], [0.25, 0.25])
    heights = [s[1][1] - s[0][1] for s in vertical.get_segments()]
    assert heights == pytest.approx([2 * T2 * 0.05 / math.sqrt(3)] * 2)
    assert any(_xy(ln)[1] == [0.0, 0.0] for ln in ax.lines)  # the zero line


def test_plots_without_their_metric_are_not_drawn_or_listed(tmp_path, monkeypatch):
    """No ``frontier/gap``: no gap plot; no gold reward (a proxy only): no overoptimisation plot. ``make_all``
    lists (and writes) only what it drew."""
    recs = _records(gold=False)
    assert _drawn(monkeypatch, plots.frontier_gap, group_records(recs), tmp_path / "g.png") is None
    # a language-model suite's records: a gold reward and no frontier (a test of the gold column passed)
    assert _drawn(monkeypatch, plots.frontier_gap, group_records(_records(gold=True)), tmp_path / "g.png") is None
    assert _drawn(monkeypatch, plots.overoptimisation, group_records(recs), ORACLE, tmp_path / "o.png") is None
    monkeypatch.undo()
    assert plots.make_all(group_records(recs), {}, tmp_path) == {"reward_vs_kl": tmp_path / "reward_vs_kl.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reward_vs_kl.png"]


def test_make_all_writes_every_plot_the_records_support_as_a_white_palette_png(tmp_path):
    from PIL import Image

    before = set(plots.pyplot().get_fignums())
    out = plots.make_all(group_records(_records(gap=True)), ORACLE, tmp_path)
    names = ("reward_vs_kl", "frontier_gap", "overoptimisation")
    assert out == {name: tmp_path / f"{name}.png" for name in names}
    for path in out.values():
        with Image.open(path) as img:
            assert img.mode == "P"  # 256 colours
            assert img.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # a white margin, not transparent
    assert set(plots.pyplot().get_fignums()) == before  # each figure closed once saved


def test_the_saved_palette_png_looks_like_matplotlibs_own_on_white_at_80_dpi(tmp_path):
    """The 256-colour PNG is the figure as matplotlib renders it at 80 dots per inch on a white background: the
    same size, and no pixel further than 64 levels off (quantising costs a few). A transparent margin would lose
    its anti-aliasing (its text drawn dark at every partly covered pixel); another resolution, another size."""
    import io

    from PIL import Image

    fig, ax = plots.pyplot().subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="a")
    ax.plot([0, 1], [1, 0], label="b")
    ax.set(title="a title in the margin", xlabel="KL", ylabel="reward")
    ax.legend()
    reference = io.BytesIO()
    fig.savefig(reference, format="png", dpi=80, bbox_inches="tight", facecolor="white")
    with Image.open(plots.save(fig, tmp_path / "f.png")) as img:
        assert img.mode == "P"
        saved = np.asarray(img.convert("RGB"), dtype=int)
    with Image.open(reference) as img:
        expected = np.asarray(img.convert("RGB"), dtype=int)
    assert saved.shape == expected.shape
    assert np.abs(saved - expected).max() <= 64


def test_a_panel_without_any_kl_spans_0_to_1(monkeypatch):
    """Records without a KL (no finite value on any path or final point) leave every panel at KL 0 to 1."""
    recs = [synth_record("reinforce", 0.1, s, {"reward/proxy": 1.0}) for s in SEEDS]
    fig = _drawn(monkeypatch, plots.reward_vs_kl, group_records(recs), {}, Path("r.png"))
    assert [ax.get_xlim() for ax in fig.axes if ax.axison] == [(0.0, 1.0)] * 2


def test_a_legend_only_where_something_is_labelled():
    plt = plots.pyplot()
    fig, (empty, labelled) = plt.subplots(1, 2)
    empty.plot([0, 1], [0, 1])
    labelled.plot([0, 1], [0, 1], label="a")
    plots.legend(empty)
    plots.legend(labelled)
    assert empty.get_legend() is None
    assert [t.get_text() for t in labelled.get_legend().get_texts()] == ["a"]
    plt.close(fig)


def test_colours_and_shades_are_tab10_and_viridis():
    """The first colour of tab10 is #1f77b4; viridis runs from #440154 to #fde725."""
    from matplotlib.colors import to_hex

    assert to_hex(plots.colours(0)) == "#1f77b4"
    assert (to_hex(plots.shades(0.0)), to_hex(plots.shades(1.0))) == ("#440154", "#fde725")
