"""The benchmark plots (matplotlib, Agg backend), drawn from grouped records and the exact oracle only.

- ``reward_vs_kl.png``: one panel per sweep (plus an overview): seed-mean training paths, final points
  with 95 % intervals, the Best-of-N curve over n and, on an exact suite, the optimal frontier.
- ``frontier_gap.png`` (exact suites): each final point's gap to the optimal frontier at its KL.
- ``overoptimisation.png``: gold reward against KL and against proxy reward.

The claims figure (``claims.png``) is :func:`rlhf_zoo.bench.claims.figure`: each claim draws its own
panel with the helpers here (:func:`pyplot`, :func:`save`, :func:`legend`, :func:`colours`,
:func:`shades`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rlhf_zoo.bench.records import Group
from rlhf_zoo.bench.stats import mean_ci

Groups = dict[str, dict[Any, Group]]
DPI = 80


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, with the benchmark pages' font sizes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "lines.linewidth": 1.2})
    return plt


def _ci(values: list[float]) -> tuple[float, float]:
    m, h, _ = mean_ci(values)
    return m, (0.0 if h is None or not math.isfinite(h) else h)


def colours(i: int) -> Any:
    """The i-th colour of matplotlib's ``tab10`` cycle."""
    return pyplot().get_cmap("tab10")(i)


def shades(x: float) -> Any:
    """A colour of the ``viridis`` map, ``x`` in [0, 1] (for an ordered knob)."""
    return pyplot().get_cmap("viridis")(x)


def legend(ax: Any, *args: Any, **kw: Any) -> None:
    """A legend only where something is labelled (no warning on an empty panel)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(*args, **kw)


def save(fig: Any, path: Path) -> Path:
    """Save as a palette PNG (256 colours: a third of the size of matplotlib's RGBA PNG, same look), written
    atomically: a render stopped half-way leaves the previous plot, not a truncated one."""
    import io

    from rlhf_zoo.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    pyplot().close(fig)
    try:
        from PIL import Image  # matplotlib's own dependency
    except ImportError:  # pragma: no cover - matplotlib always brings Pillow
        atomic_write_bytes(path, buf.getvalue())
        return path
    buf.seek(0)
    out = io.BytesIO()
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="png", optimize=True)
    atomic_write_bytes(path, out.getvalue())
    return path


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _final_xy(g: Group, ykey: str = "reward/proxy", xkey: str = "kl/exact") -> tuple[float, float, float, float]:
    x, xe = _ci(g.finals(xkey))
    y, ye = _ci(g.finals(ykey))
    return x, xe, y, ye


def _bon_curve(groups: Groups, oracle: dict[str, Any], ykey: str = "reward/proxy") -> tuple[list[float], list[float]]:
    if oracle.get("best_of_n"):
        col = "reward_proxy" if ykey == "reward/proxy" else "reward_gold"
        pts = [(b["kl"], b[col]) for b in oracle["best_of_n"]]
    else:
        pts = [(_final_xy(g, ykey)[0], _final_xy(g, ykey)[2]) for g in groups.get("best_of_n", {}).values()]
    pts = sorted(p for p in pts if math.isfinite(p[0]) and math.isfinite(p[1]))
    return [p[0] for p in pts], [p[1] for p in pts]


def _frontier(oracle: dict[str, Any], xmax: float, ykey: str = "reward_proxy") -> tuple[list[float], list[float]]:
    pts = sorted((f["kl"], f[ykey]) for f in oracle.get("frontier", []) if f["kl"] <= xmax)
    return [p[0] for p in pts], [p[1] for p in pts]


def _xmax(groups: Groups) -> float:
    xs = [p[1] for vals in groups.values() for g in vals.values() for path in g.paths("kl/exact") for p in path]
    xs = [x for x in xs if math.isfinite(x)]
    return 1.08 * max(xs) if xs else 1.0


def _panel_xmax(vals: dict[Any, Group]) -> float:
    """The KL range of one objective's panel: its training paths and its final points' intervals (a shared
    range would squash every panel to the widest objective's, e.g. PPO-lite's KL of 30 beside J-BOND's 3)."""
    xs = [p[1] for g in vals.values() for path in g.paths("kl/exact") for p in path]
    xs += [x + xe for x, xe, _, _ in (_final_xy(g) for g in vals.values())]
    xs = [x for x in xs if math.isfinite(x)]
    return 1.08 * max(xs) if xs else 1.0


def _references(
    ax: Any, groups: Groups, oracle: dict[str, Any], xmax: float, ykey: str = "reward/proxy", bon: bool = True
) -> None:
    fx, fy = _frontier(oracle, xmax, "reward_proxy" if ykey == "reward/proxy" else "reward_gold")
    if fx:
        label = "optimal π*_β" if ykey == "reward/proxy" else "π*_β (proxy-optimal)"
        ax.plot(fx, fy, color="black", lw=1.4, label=label, zorder=1)
    if not bon:
        return
    bx, by = _bon_curve(groups, oracle, ykey)
    keep = [(x, y) for x, y in zip(bx, by, strict=True) if x <= xmax]
    if keep:
        ax.plot(
            [p[0] for p in keep],
            [p[1] for p in keep],
            "--",
            color="grey",
            marker=".",
            label="Best-of-N (over n)",
            zorder=1,
        )


def reward_vs_kl(groups: Groups, oracle: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    tags = [t for t in groups if t != "best_of_n"]
    panels = 1 + len(tags)
    ncols = 3 if panels > 4 else 2
    nrows = math.ceil(panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.3 * nrows), squeeze=False)
    flat = [a for row in axes for a in row]
    xmax = _xmax(groups)
    cmap = plt.get_cmap("tab10")
    ax = flat[0]
    _references(ax, groups, oracle, xmax)
    for i, tag in enumerate(tags):
        pts = [_final_xy(g) for g in groups[tag].values()]
        first = next(iter(groups[tag].values()))
        ax.plot(
            [p[0] for p in pts],
            [p[2] for p in pts],
            "o-" if first.frontier == "sweep" else "o",
            ms=3,
            color=cmap(i % 10),
            label=first.objective,
            lw=0.9,
        )
    ax.set_title("final points of every objective")
    legend(ax, loc="lower right", fontsize=6)
    limits = [xmax]
    for ax, tag in zip(flat[1:], tags, strict=False):
        vals = groups[tag]
        first = next(iter(vals.values()))
        limits.append(_panel_xmax(vals))
        _references(ax, groups, oracle, limits[-1])
        viridis = plt.get_cmap("viridis")
        for j, (value, g) in enumerate(vals.items()):
            c = viridis(0.9 * j / max(1, len(vals) - 1))
            mp = g.mean_path("kl/exact", "reward/proxy")
            ax.plot([p[1] for p in mp], [p[2] for p in mp], color=c, lw=1.0, alpha=0.9)
            x, xe, y, ye = _final_xy(g)
            ax.errorbar(
                [x],
                [y],
                xerr=[xe],
                yerr=[ye],
                fmt="o",
                ms=4,
                color=c,
                capsize=2,
                label=f"{first.knob_label}={_fmt(value)}",
            )
        ax.set_title(first.objective)
        legend(ax, loc="lower right", fontsize=6)
    for ax, limit in zip(flat[:panels], limits, strict=True):
        ax.set_xlim(0, limit)
        ax.set_xlabel("KL(π‖π_ref) [nats]")
        ax.set_ylabel("proxy reward")
        ax.grid(alpha=0.3)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def frontier_gap(groups: Groups, path: Path) -> Path | None:
    if not any(
        "frontier/gap" in r.get("summary", {}) for vals in groups.values() for g in vals.values() for r in g.records
    ):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    cmap = plt.get_cmap("tab10")
    for i, (_tag, vals) in enumerate(groups.items()):
        pts = [_final_xy(g, "frontier/gap") for g in vals.values()]
        first = next(iter(vals.values()))
        ax.errorbar(
            [p[0] for p in pts],
            [p[2] for p in pts],
            yerr=[p[3] for p in pts],
            fmt="o-",
            ms=3,
            lw=0.8,
            capsize=2,
            color=cmap(i % 10),
            label=first.objective,
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("KL(π‖π_ref) [nats]")
    ax.set_ylabel("optimal reward at this KL − reward")
    ax.set_title("gap to the optimal reward-vs-KL frontier (final points)")
    ax.grid(alpha=0.3)
    legend(ax, fontsize=6, loc="upper left")
    fig.tight_layout()
    return save(fig, path)


def overoptimisation(groups: Groups, oracle: dict[str, Any], path: Path) -> Path | None:
    if not any(
        "reward/gold" in r.get("summary", {}) for vals in groups.values() for g in vals.values() for r in g.records
    ):
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xmax = _xmax(groups)
    cmap = plt.get_cmap("tab10")
    _references(left, groups, oracle, xmax, "reward/gold", bon=False)
    fx, fp = _frontier(oracle, xmax, "reward_proxy")
    _, fg = _frontier(oracle, xmax, "reward_gold")
    if fx:
        right.plot(fp, fg, color="black", lw=1.4, label="π*_β (proxy-optimal)")
    lo, hi = math.inf, -math.inf
    for i, (_tag, vals) in enumerate(groups.items()):
        c = cmap(i % 10)
        first = next(iter(vals.values()))
        for g in vals.values():
            mp = g.mean_path("kl/exact", "reward/gold", "reward/proxy")
            left.plot([p[1] for p in mp], [p[2] for p in mp], color=c, lw=0.6, alpha=0.35)
            right.plot([p[3] for p in mp], [p[2] for p in mp], color=c, lw=0.6, alpha=0.35)
            lo = min([lo, *(p[3] for p in mp if math.isfinite(p[3]))])
            hi = max([hi, *(p[3] for p in mp if math.isfinite(p[3]))])
        fin = [(_final_xy(g, "reward/gold"), _final_xy(g, "reward/gold", "reward/proxy")) for g in vals.values()]
        left.plot(
            [a[0] for a, _ in fin],
            [a[2] for a, _ in fin],
            "o-" if first.frontier == "sweep" else "o",
            ms=3,
            color=c,
            lw=1.0,
            label=first.objective,
        )
        right.plot([b[0] for _, b in fin], [b[2] for _, b in fin], "o", ms=3, color=c, label=first.objective)
    if math.isfinite(lo):
        right.plot([lo, hi], [lo, hi], ":", color="grey", lw=0.8, label="gold = proxy")
    left.set(xlabel="KL(π‖π_ref) [nats]", ylabel="gold reward", title="gold reward against KL", xlim=(0, xmax))
    right.set(xlabel="proxy reward", ylabel="gold reward", title="gold against proxy (paths over training)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    legend(left, fontsize=6, loc="lower right")
    fig.tight_layout()
    return save(fig, path)


def make_all(groups: Groups, oracle: dict[str, Any], fig_dir: Path) -> dict[str, Path]:
    """Draw every plot that the records support into ``fig_dir`` (not the claims figure); returns name → path."""
    out: dict[str, Path] = {"reward_vs_kl": reward_vs_kl(groups, oracle, fig_dir / "reward_vs_kl.png")}
    gap = frontier_gap(groups, fig_dir / "frontier_gap.png")
    if gap is not None:
        out["frontier_gap"] = gap
    over = overoptimisation(groups, oracle, fig_dir / "overoptimisation.png")
    if over is not None:
        out["overoptimisation"] = over
    return out


__all__ = [
    "colours",
    "frontier_gap",
    "legend",
    "make_all",
    "overoptimisation",
    "pyplot",
    "reward_vs_kl",
    "save",
    "shades",
]
