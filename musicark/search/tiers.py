"""Popularity bands, and the bound that lets a query stop before scoring every match.

A hit's score is BM25 x log2(2 + popularity) (`weight_by_field`). Every document carries
its band (`tier`, from its popularity); a query scores the most popular band first, then
the next, and stops as soon as the page's last score beats the best score any document of
the bands left could reach: an upper bound of its BM25 (`text_bound`) times the weight of
the highest popularity those bands hold. The page is then exactly the one an exhaustive
search gives (a test compares both on a seeded catalogue).
"""

from __future__ import annotations

import math

import tantivy

# Lowest popularity of each band, most popular first; the last band holds everything else.
FLOORS = (50, 20, 5)
TIERS = len(FLOORS) + 1
K1 = 1.2  # tantivy's BM25 constants
# Slack over the computed bound, for tantivy's f32 arithmetic.
MARGIN = 1e-3


def tier_of(popularity: int) -> int:
    """The band of a popularity: 0 for the most popular, `TIERS - 1` for the rest."""
    for i, floor in enumerate(FLOORS):
        if popularity >= floor:
            return i
    return TIERS - 1


def weight(popularity: int) -> float:
    """tantivy's `weight_by_field` multiplier."""
    return math.log2(2.0 + max(popularity, 0))


def ceiling_weight(tier: int) -> float:
    """The largest weight of a document in band `tier` or below (after `tier - 1`)."""
    return math.inf if tier == 0 else weight(FLOORS[tier - 1] - 1)


def documents_bound(searcher: tantivy.Searcher) -> int:
    """At least the document count BM25 uses (deleted documents included: each one
    still counts in its band's document frequency)."""
    counted = sum(int(searcher.doc_freq("tier", t)) for t in range(TIERS))
    return max(counted, int(searcher.num_docs))


def term_bound(searcher: tantivy.Searcher, field: str, word: str, documents: int) -> float:
    """The most one term query can score in any document: BM25's tf/(tf + K1 * norm)
    stays below 1, so idf x (1 + K1)."""
    freq = int(searcher.doc_freq(field, word))
    if freq == 0:
        return 0.0
    return math.log(1.0 + (documents - freq + 0.5) / (freq + 0.5)) * (1.0 + K1)
