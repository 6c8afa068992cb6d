"""The benchmark plots (matplotlib, Agg backend), drawn from grouped records and the exact oracle only.

- ``reward_vs_kl.png``: one panel per sweep (plus an overview): seed-mean training paths, final points
  with 95 % intervals, the Best-of-N curve over n and, on an exact suite, the optimal frontier.
- ``frontier_gap.png`` (exact suites): each final point's gap to the optimal frontier at its KL.
- ``overoptimisation.png``: gold reward against KL and against proxy reward.
- ``claims.png``: one panel per claim of :mod:`rlhf_zoo.bench.verdicts`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rlhf_zoo.bench.records import Group
from rlhf_zoo.bench.stats import mean_ci
from rlhf_zoo.bench.verdicts import PAPER_BETAS_RL, find

Groups = dict[str, dict[Any, Group]]
DPI = 80


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "lines.linewidth": 1.2})
    return plt


def _ci(values: list[float]) -> tuple[float, float]:
    m, h, _ = mean_ci(values)
    return m, (0.0 if h is None or not math.isfinite(h) else h)


def _legend(ax: Any, *args: Any, **kw: Any) -> None:
    """A legend only where something is labelled (no warning on an empty panel)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(*args, **kw)


def _save(fig: Any, path: Path) -> Path:
    """Save as a palette PNG (256 colours: a third of the size of matplotlib's RGBA PNG, same look)."""
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    _plt().close(fig)
    try:
        from PIL import Image  # matplotlib's own dependency
    except ImportError:  # pragma: no cover - matplotlib always brings Pillow
        path.write_bytes(buf.getvalue())
        return path
    buf.seek(0)
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
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
    plt = _plt()
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
    _legend(ax, loc="lower right", fontsize=6)
    for ax, tag in zip(flat[1:], tags, strict=False):
        vals = groups[tag]
        first = next(iter(vals.values()))
        _references(ax, groups, oracle, xmax)
        colours = plt.get_cmap("viridis")
        for j, (value, g) in enumerate(vals.items()):
            c = colours(0.9 * j / max(1, len(vals) - 1))
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
        _legend(ax, loc="lower right", fontsize=6)
    for ax in flat[:panels]:
        ax.set_xlim(0, xmax)
        ax.set_xlabel("KL(π‖π_ref) [nats]")
        ax.set_ylabel("proxy reward")
        ax.grid(alpha=0.3)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def frontier_gap(groups: Groups, path: Path) -> Path | None:
    if not any(
        "frontier/gap" in r.get("summary", {}) for vals in groups.values() for g in vals.values() for r in g.records
    ):
        return None
    plt = _plt()
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
    _legend(ax, fontsize=6, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def overoptimisation(groups: Groups, oracle: dict[str, Any], path: Path) -> Path | None:
    if not any(
        "reward/gold" in r.get("summary", {}) for vals in groups.values() for g in vals.values() for r in g.records
    ):
        return None
    plt = _plt()
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
    _legend(left, fontsize=6, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _band(ax: Any, g: Group, key: str, colour: Any, label: str, style: str = "-") -> None:
    per_seed = [{p[0]: p[1] for p in path} for path in g.paths(key)]
    steps = sorted(set.intersection(*(set(d) for d in per_seed))) if per_seed else []
    ms = [_ci([d[s] for d in per_seed]) for s in steps]
    ax.plot(steps, [m for m, _ in ms], style, color=colour, label=label)
    ax.fill_between(steps, [m - h for m, h in ms], [m + h for m, h in ms], color=colour, alpha=0.15, lw=0)


def claims(groups: Groups, exact: bool, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.4))
    (a, b, c1, c2), (d, e1, e2, spare) = axes
    cmap = plt.get_cmap("tab10")
    # (a) Jeffreys β
    betas = [(x, find(groups, "bond_beta", x)) for x in (0.0, 0.5, 1.0)]
    if all(g is not None for _, g in betas):
        keys: tuple[tuple[str, str], ...] = (("kl/exact", "KL(π‖π_ref)"),)
        if exact:
            keys = (("kl/to_bon", "KL(π‖π_BoN)"), ("kl/from_bon", "KL(π_BoN‖π)"))
        for j, (x, g) in enumerate(betas):
            ms = [_ci([v for v in g.finals(k) if math.isfinite(v)]) for k, _ in keys]
            a.bar(
                [i + 0.27 * (j - 1) for i in range(len(keys))],
                [m for m, _ in ms],
                0.25,
                yerr=[h for _, h in ms],
                capsize=2,
                color=cmap(j),
                label=f"β={x:g}",
            )
        a.set_xticks(range(len(keys)), [lab for _, lab in keys])
        _legend(a)
    a.set_title("(a) BOND n=4: Jeffreys β" + ("" if exact else " (KL to π_BoN not measured)"))
    # (b) iterative vs fixed
    fixed = find(groups, "bond", 2)
    if fixed is not None:
        _band(b, fixed, "reward/proxy", "black", "BOND n=2 (fixed)")
    for j, (period, g) in enumerate(groups.get("iterative", {}).items()):
        _band(b, g, "reward/proxy", cmap(j + 1), f"iterative, swap every {period}")
    b.set(title="(b) iterative vs fixed-n BOND", xlabel="step", ylabel="proxy reward")
    _legend(b)
    # (c1) EMA vs hard swaps: a swap period M shares the colour of the EMA rate η closest to 1/M
    etas = list(groups.get("jbond_eta", {}))
    for j, eta in enumerate(etas):
        mp = groups["jbond_eta"][eta].mean_path("kl/exact", "reward/proxy")
        c1.plot([p[1] for p in mp], [p[2] for p in mp], "-", color=cmap(j), label=f"EMA η={_fmt(eta)}")
    for k, (m, swap) in enumerate(groups.get("jbond_swap", {}).items()):
        j = min(range(len(etas)), key=lambda i: abs(math.log(float(etas[i]) * float(m)))) if etas else len(etas) + k
        mp = swap.mean_path("kl/exact", "reward/proxy")
        c1.plot([p[1] for p in mp], [p[2] for p in mp], "--", color=cmap(j), label=f"hard swap every {m}")
    c1.set(title="(c) J-BOND: EMA anchor vs hard swaps", xlabel="KL(π‖π_ref)", ylabel="proxy reward")
    _legend(c1)
    # (c2) γ
    for j, (gamma, g) in enumerate(groups.get("jbond_gamma", {}).items()):
        _band(
            c2,
            g,
            "kl/exact",
            plt.get_cmap("viridis")(0.9 * j / max(1, len(groups["jbond_gamma"]) - 1)),
            f"γ={_fmt(gamma)}",
        )
    c2.set(title="(c) J-BOND: KL growth over γ", xlabel="step", ylabel="KL(π‖π_ref)")
    _legend(c2)
    # (d) J-BOND vs REINFORCE
    jb = find(groups, "jbond_gamma", 0.0)
    if jb is not None:
        mp = jb.mean_path("kl/exact", "reward/proxy")
        d.plot([p[1] for p in mp], [p[2] for p in mp], color="black", lw=2, label="J-BOND (γ=0, η=0.02)")
    for j, beta in enumerate(PAPER_BETAS_RL):
        g = find(groups, "reinforce", beta)
        if g is not None:
            mp = g.mean_path("kl/exact", "reward/proxy")
            d.plot([p[1] for p in mp], [p[2] for p in mp], color=cmap(j + 1), label=f"REINFORCE β_RL={beta:g}")
    d.set(title="(d) J-BOND vs REINFORCE (training paths)", xlabel="KL(π‖π_ref)", ylabel="proxy reward")
    _legend(d)
    # (e) Best-of-N
    bon = sorted((int(n), g) for n, g in groups.get("best_of_n", {}).items())
    if bon:
        ns = [n for n, _ in bon]
        e1.plot(ns, [_ci(g.finals("quantile/log_mean"))[0] for _, g in bon], "o-", label="measured E[log p_≤]")
        fine = [2 ** (k / 4) for k in range(0, 4 * int(math.log2(max(ns))) + 1)]
        e1.plot(fine, [-1 / n for n in fine], "--", color="black", label="−1/n (continuous reward)")
        label = "KL (exact)" if exact else "KL estimate"
        e2.plot(ns, [_ci(g.finals("kl/exact"))[0] for _, g in bon], "o-", label=label)
        e2.plot(fine, [math.log(n) - (n - 1) / n for n in fine], "--", color="black", label="log n − (n−1)/n")
        for ax in (e1, e2):
            ax.set_xscale("log", base=2)
            _legend(ax)
    e1.set(title="(e) Best-of-N: E[log p_≤] under π_BoN", xlabel="n", ylabel="E[log p_≤]")
    e2.set(title="(e) Best-of-N: KL(π_BoN‖π_ref) and its bound", xlabel="n", ylabel="nats")
    spare.axis("off")
    for ax in (a, b, c1, c2, d, e1, e2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def make_all(groups: Groups, oracle: dict[str, Any], exact: bool, fig_dir: Path) -> dict[str, Path]:
    """Draw every plot that the records support into ``fig_dir``; returns name → path."""
    out: dict[str, Path] = {"reward_vs_kl": reward_vs_kl(groups, oracle, fig_dir / "reward_vs_kl.png")}
    gap = frontier_gap(groups, fig_dir / "frontier_gap.png")
    if gap is not None:
        out["frontier_gap"] = gap
    over = overoptimisation(groups, oracle, fig_dir / "overoptimisation.png")
    if over is not None:
        out["overoptimisation"] = over
    out["claims"] = claims(groups, exact, fig_dir / "claims.png")
    return out


__all__ = ["claims", "frontier_gap", "make_all", "overoptimisation", "reward_vs_kl"]
