"""The Pareto picture: accuracy against size and against latency, the chosen candidate marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_pareto", "pareto_front"]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by any other (lower cost ``p[0]``, higher accuracy ``p[1]``), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(result: Any, path: str | Path) -> Path:
    """Draw ``result`` (an :class:`~edgert.optimize.search.OptimizeResult`) to a PNG at ``path``.

    Left: top-1 vs file size; right: top-1 vs latency (estimated on the target when
    the profile gives one, else measured on this host). Passing candidates are
    filled, failing ones hollow, the chosen one a red star (or, with no winner,
    the closest one circled), the float teacher a black square, the budget a
    dashed line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    measured = [c for c in result.candidates if c.measured]
    use_target = bool(measured) and all(c.target_latency_ms is not None for c in measured)
    lat_label = f"estimated latency on {result.target} (ms)" if use_target else "host latency (ms, 1 thread)"

    def lat(c):
        return c.target_latency_ms if use_target else c.host_latency_ms

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    base = result.baseline
    floor = 100 * base.get("accuracy", 0) - result.budget
    modes = sorted({c.mode for c in measured})
    colors = dict(zip(modes, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for ax, xkey, xlabel in ((axes[0], lambda c: c.size_bytes / 1024, "file size (KiB)"), (axes[1], lat, lat_label)):
        for mode in modes:
            for passed in (True, False):
                pts = [c for c in measured if c.mode == mode and c.passed == passed and xkey(c) is not None]
                if not pts:
                    continue
                ax.scatter([xkey(c) for c in pts], [100 * c.accuracy for c in pts], s=36,
                           facecolors=colors[mode] if passed else "none", edgecolors=colors[mode],
                           label=f"{mode} ({'passes' if passed else 'fails'})")
        pts = [c for c in measured if xkey(c) is not None]
        front = pareto_front([(xkey(c), c.accuracy) for c in pts])
        if len(front) > 1:
            ax.plot([xkey(pts[i]) for i in front], [100 * pts[i].accuracy for i in front], color="0.6", lw=1, zorder=0,
                    label="Pareto front")
        ax.axhline(floor, color="0.4", ls="--", lw=1, label=f"budget: −{result.budget:g} points")
        if ax is axes[0] and base.get("size_bytes"):
            ax.scatter([base["size_bytes"] / 1024], [100 * base["accuracy"]], marker="s", color="black", label="float teacher")
        if ax is axes[1] and not use_target and base.get("host_latency_ms") is not None:
            ax.scatter([base["host_latency_ms"]], [100 * base["accuracy"]], marker="s", color="black", label="float teacher")
        mark = result.best or result.closest
        if mark is not None and xkey(mark) is not None:
            if result.best is not None:
                ax.scatter([xkey(mark)], [100 * mark.accuracy], marker="*", s=260, color="red", zorder=5,
                           label=f"chosen: {mark.name}")
            else:
                ax.scatter([xkey(mark)], [100 * mark.accuracy], s=260, facecolors="none", edgecolors="red", lw=2,
                           zorder=5, label=f"closest (fails): {mark.name}")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    status = f"chosen {result.best.name}" if result.best else "no candidate meets the budget"
    fig.suptitle(f"edgert optimize → {result.target}: {len(measured)} candidates measured, {status}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
