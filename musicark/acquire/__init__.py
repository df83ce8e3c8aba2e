"""Acquisition: grow the archive from lawful sources (see `run.acquire`).

Public API: `acquire`, `AcquireSummary`, `HttpSettings`, `Offer`, the source protocol
(`Source`, `BaseSource`, `register`, `source_classes`) and `licence_rights`.
"""

from musicark.acquire.http import HttpSettings
from musicark.acquire.model import STATUSES, Offer
from musicark.acquire.run import AcquireSummary, acquire
from musicark.acquire.sources import BaseSource, Source, register, source_classes
from musicark.catalog.licences import licence_rights

__all__ = [
    "STATUSES",
    "AcquireSummary",
    "BaseSource",
    "HttpSettings",
    "Offer",
    "Source",
    "acquire",
    "licence_rights",
    "register",
    "source_classes",
]
