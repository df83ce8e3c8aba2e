"""The coverage plot: % of listens and % of tracks against storage, budget and knee marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicark.errors import MusicarkError

_UNITS = ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1.0, "B"))


def _unit(max_bytes: float) -> tuple[float, str]:
    for factor, name in _UNITS:
        if max_bytes >= factor:
            return factor, name
    return 1.0, "B"


def plot_coverage(metadata: dict[str, Any], path: Path, *, title: str | None = None) -> Path:
    """Write the plan's coverage curve as a PNG (matplotlib, Agg backend) to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = metadata["curve"]
    summary = metadata["summary"]
    budget = summary["options"].get("budget_bytes")
    selected = summary["selected"]
    xmax = max([*curve["bytes"], budget or 0, 1])
    factor, unit = _unit(float(xmax))
    xs = [b / factor for b in curve["bytes"]]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    try:
        ax.plot(xs, curve["pct_listens"], label="% of expected listens", color="tab:blue")
        ax.plot(xs, curve["pct_tracks"], label="% of tracks", color="tab:orange")
        mark = budget if budget is not None else selected["bytes"]
        ax.axvline(
            mark / factor,
            color="tab:red",
            linestyle="--",
            label=f"budget: {selected['pct_listens']:.2f} % of listens, "
            f"{selected['pct_tracks']:.2f} % of tracks",
        )
        k = summary.get("knee")
        if k:
            ax.plot([k["bytes"] / factor], [k["pct_listens"]], "o", color="tab:green")
            ax.annotate(
                f"knee ({k['pct_listens']:.1f} %)",
                (k["bytes"] / factor, k["pct_listens"]),
                textcoords="offset points",
                xytext=(8, -14),
            )
        ax.set_xlabel(f"storage ({unit})")
        ax.set_ylabel("% covered")
        ax.set_ylim(0, 100.5)
        ax.set_xlim(0, xmax / factor)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        strategy = summary["options"]["strategy"]
        ax.set_title(title or f"Coverage by storage ({strategy} ranking)")
        fig.tight_layout()
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format="png", metadata={"Software": None})
            tmp.replace(path)
        except OSError as exc:
            raise MusicarkError(f"cannot write the plot to {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
    return path
