"""Planning an archive end to end: read, rank, select, save (and plot), describe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from musicark.archive import Archive
from musicark.plan.io import (
    LATEST_PLAN,
    LATEST_SUMMARY,
    copy_file,
    plans_dir,
    read_plan_metadata,
    write_json,
    write_plan,
)
from musicark.plan.load import load_catalog
from musicark.plan.plot import plot_coverage
from musicark.plan.select import PlanOptions, make_plan
from musicark.plan.table import Plan
from musicark.progress import ProgressCallback
from musicark.units import format_size


@dataclass
class PlanResult:
    plan: Plan
    paths: list[Path]  # plan files written (the archive's latest first)
    plot: Path | None


def plan_archive(
    archive: Archive,
    options: PlanOptions,
    *,
    out: Path | None = None,
    plot: Path | None = None,
    progress: ProgressCallback | None = None,
) -> PlanResult:
    """Plan `archive` under `options`; keep it as ARCHIVE/plans/latest.{parquet,json}.

    `out` writes another copy of the plan file; `plot` writes the coverage PNG.
    """
    # The system allocator hands large freed buffers back at once (see
    # `load.map_large_allocations`); Arrow's caching pool would keep them resident.
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        cols = load_catalog(archive, progress=progress)
        plan = make_plan(cols, options, progress=progress, consume=True)
        del cols
        folder = plans_dir(archive)
        paths = [folder / LATEST_PLAN]
        if out is not None:
            paths.append(Path(out))
        write_plan(plan, paths[0])
        if out is not None:
            copy_file(paths[0], Path(out))
        write_json(plan.metadata(), folder / LATEST_SUMMARY)
        png = plot_coverage(plan.metadata(), plot) if plot is not None else None
    finally:
        pa.set_memory_pool(pool)
    return PlanResult(plan=plan, paths=paths, plot=png)


def latest_plan(archive: Archive) -> Path:
    """The last plan made in `archive` (ARCHIVE/plans/latest.parquet)."""
    return plans_dir(archive) / LATEST_PLAN


def load_plan_summary(path: Path) -> dict[str, Any]:
    """{"format", "summary", "curve"} of a saved plan file."""
    return read_plan_metadata(path)


def _pct(x: float) -> str:
    return f"{x:.2f} %"


def format_summary(metadata: dict[str, Any]) -> str:
    """A plan's summary as a few lines of text."""
    s = metadata["summary"]
    o, c, sel = s["options"], s["catalogue"], s["selected"]
    budget = []
    if o.get("budget_bytes") is not None:
        budget.append(format_size(o["budget_bytes"]))
    if o.get("budget_tracks") is not None:
        budget.append(f"{o['budget_tracks']} tracks")
    lines = [
        f"plan: {o['strategy']} ranking, budget {' and '.join(budget)}"
        f"{', redistributable only' if o['rights'] == 'public' else ''}"
        f"{', one track per ISRC' if o['one_per_isrc'] else ''}",
        f"selected: {sel['tracks']} tracks, {format_size(sel['bytes'])}"
        f" ({format_size(sel['bytes_to_acquire'])} to acquire,"
        f" {format_size(sel['bytes_held'])} already held)",
        f"covers: {_pct(sel['pct_tracks'])} of {c['tracks']} tracks,"
        f" {_pct(sel['pct_listens'])} of expected listens",
    ]
    for name, tier in sel["tiers"].items():
        lines.append(f"  tier {name}: {tier['tracks']} tracks, {format_size(tier['bytes'])}")
    pub, dark = sel["redistributable"], sel["dark"]
    lines.append(
        f"rights: {pub['tracks']} redistributable tracks ({format_size(pub['bytes'])}),"
        f" {dark['tracks']} dark-archive tracks ({format_size(dark['bytes'])})"
    )
    lines.append(
        f"marginal value at the budget: {s['marginal_listens_per_tb']:,.0f} listens per extra TB"
    )
    k = s.get("knee")
    if k:
        lines.append(
            f"knee of the curve: {format_size(k['bytes'])}, {k['tracks']} tracks,"
            f" {_pct(k['pct_listens'])} of listens"
        )
    st = s["statuses"]
    lines.append("statuses: " + ", ".join(f"{name} {n}" for name, n in st.items() if n))
    if c["unknown_size"]:
        lines.append(
            f"note: {c['unknown_size']} tracks have no duration and no held file"
            " (skipped_unknown_size): not planned"
        )
    m = s["model"]
    origin = f"fitted to {m['calibrated_from']} tracks" if m["calibrated_from"] else "configured"
    lines.append(
        f"listens model ({origin}): {m['scale']:.4g} * {m['base']:.4g} ** (popularity / 100)"
        f" - {m['scale']:.4g}"
    )
    return "\n".join(lines)
