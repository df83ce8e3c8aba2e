"""Plan: rank the catalogue and select what fits a storage budget, with the coverage curve.

Public API::

    plan_archive(archive, PlanOptions(...), out=..., plot=...) -> PlanResult
    make_plan(load_catalog(archive), options) -> Plan      (no files written)
    read_plan(path), selected_track_ids(path), load_plan_summary(path), latest_plan(archive)
"""

from musicark.plan.io import read_plan, selected_track_ids
from musicark.plan.load import CatalogColumns, load_catalog
from musicark.plan.make import (
    PlanResult,
    format_summary,
    latest_plan,
    load_plan_summary,
    plan_archive,
)
from musicark.plan.plot import plot_coverage
from musicark.plan.select import PlanOptions, make_plan
from musicark.plan.table import STATUSES, Plan

__all__ = [
    "STATUSES",
    "CatalogColumns",
    "Plan",
    "PlanOptions",
    "PlanResult",
    "format_summary",
    "latest_plan",
    "load_catalog",
    "load_plan_summary",
    "make_plan",
    "plan_archive",
    "plot_coverage",
    "read_plan",
    "selected_track_ids",
]
