"""A plan's rows: the statuses, the Parquet schema, and `Plan`, which produces the rows on
demand from per-track arrays (a plan of 256 M tracks is written by batches, never held as
one table).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from musicark.plan.curve import Cumulative
from musicark.plan.model import TIERS

STATUSES = (
    "selected",
    "skipped_over_budget",
    "skipped_isrc_has_download",
    "skipped_low_priority",
    "skipped_rights",
    "skipped_unknown_size",
)
SELECTED, OVER_BUDGET, ISRC_DUP, LOW_PRIORITY, RIGHTS, UNKNOWN_SIZE = range(6)
CANDIDATE = -1
SIZE_SOURCES = ("held", "estimated", "unknown")
PLAN_FORMAT = 1
METADATA_KEY = b"musicark.plan"  # the schema metadata key holding summary and curve


@dataclass
class Plan:
    """A ranked plan: rows are produced on demand (`batches`, `table`) from per-track arrays.

    Plan order is `ranked` (track indices, best first; their cumulative bytes and listens
    in `cum`), then `rest` (the skipped tracks); the per-track arrays are in catalogue order.
    """

    summary: dict[str, Any]
    curve: dict[str, list[float]]
    ranked: np.ndarray
    rest: np.ndarray
    cum: Cumulative
    arrays: dict[str, Any] = field(repr=False)  # numpy arrays (`covered`: rank.Covered)

    @property
    def candidates(self) -> int:
        return len(self.ranked)

    def _order(self, start: int, stop: int) -> np.ndarray:
        """Track indices of plan rows [start, stop)."""
        m = len(self.ranked)
        head = self.ranked[start:stop]
        if stop <= m:
            return head
        return np.concatenate([head, self.rest[max(start - m, 0) : stop - m]])

    def metadata(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "summary": self.summary, "curve": self.curve}

    def schema(self) -> pa.Schema:
        meta = orjson.dumps(self.metadata(), option=orjson.OPT_SORT_KEYS)
        return plan_schema().with_metadata({METADATA_KEY: meta})

    def batches(self, rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
        """The plan's rows in rank order, `rows` at a time."""
        a, m = self.arrays, self.candidates
        n = m + len(self.rest)
        schema = self.schema()
        for start in range(0, max(n, 1), rows):
            stop = min(n, start + rows)
            idx = self._order(start, stop)
            nbytes = a["nbytes"][idx]
            ranked = max(0, min(stop, m) - start)
            cum_b = np.zeros(stop - start, dtype=np.int64)
            cum_l = np.zeros(stop - start, dtype=np.float64)
            if ranked:
                cum_b[:ranked], cum_l[:ranked] = self.cum.span(start, start + ranked)
            unranked = np.zeros(stop - start, dtype=bool)
            unranked[ranked:] = True
            source = (nbytes < 0).astype(np.int8) + np.int8(1)  # estimated 1, unknown 2
            source[a["held"].mask(idx)] = 0
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                    pa.array(a["track_id"][idx]),
                    _dict(a["status"][idx], STATUSES),
                    _dict(a["tier"][idx], TIERS),
                    _dict(source, SIZE_SOURCES),
                    pa.array(nbytes, mask=nbytes < 0),
                    pa.array(a["listens"][idx]),
                    pa.array(a["covered"][idx]),
                    pa.array(cum_b, mask=unranked),
                    pa.array(cum_l, mask=unranked),
                    pa.array(a["public"][idx]),
                ],
                schema=schema,
            )

    @property
    def table(self) -> pa.Table:
        """All rows at once (small plans, tests); large plans are written by batches."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema())


def plan_schema() -> pa.Schema:
    status = pa.dictionary(pa.int8(), pa.string())
    return pa.schema(
        [
            ("rank", pa.int64()),
            ("track_id", pa.int64()),
            ("status", status),
            ("tier", status),
            ("size_source", status),
            ("expected_bytes", pa.int64()),
            ("expected_listens", pa.float64()),
            ("covered_listens", pa.float64()),
            ("cumulative_bytes", pa.int64()),
            ("cumulative_listens", pa.float64()),
            ("redistributable", pa.bool_()),
        ]
    )


def _dict(codes: np.ndarray, vocab: tuple[str, ...]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8, copy=False)), pa.array(vocab)
    )
