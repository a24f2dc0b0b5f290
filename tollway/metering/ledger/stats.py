"""A snapshot of the ledger's health for ``/health/ready`` and metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True, frozen=True)
class LedgerStats:
    spool_path: str
    spool_rows: int  # rows on disk waiting to be shipped (quarantined ones included)
    spool_bytes: int  # spool file + WAL on disk
    spool_max_rows: int
    spool_max_bytes: int
    queued: int  # rows handed to the spool thread, not yet on disk (RAM; bounded)
    lag_s: float  # age of the oldest row not yet shipped (0: nothing waiting)
    shipped: int  # rows written to the database by this process (direct writes included)
    direct: int  # of those, rows written straight into the embedded SQLite database, never spooled
    duplicates: int  # re-delivered rows the database already had (skipped, not counted twice)
    adopted: int  # rows shipped from spool files left by processes that are gone
    dropped: int  # rows that never reached the disk (spool full / unwritable)
    quarantined: int  # rows the database refused, kept in the spool
    spool_ok: bool  # the spool can take rows
    spool_full: bool
    spool_error: str | None  # the spool file's own write error
    database_ok: bool  # the last database write succeeded (or none failed yet)
    last_error: str | None  # the last database error while it persists
    last_error_at: float | None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["lag_s"] = round(self.lag_s, 3)
        return out

    def metrics(self) -> dict[str, float]:
        """Gauges and counters, Prometheus-style names."""
        return {
            "tollway_ledger_spool_rows": float(self.spool_rows),
            "tollway_ledger_spool_bytes": float(self.spool_bytes),
            "tollway_ledger_queued_rows": float(self.queued),
            "tollway_ledger_lag_seconds": self.lag_s,
            "tollway_ledger_shipped_rows_total": float(self.shipped),
            "tollway_ledger_direct_rows_total": float(self.direct),
            "tollway_ledger_duplicate_rows_total": float(self.duplicates),
            "tollway_ledger_adopted_rows_total": float(self.adopted),
            "tollway_ledger_dropped_rows_total": float(self.dropped),
            "tollway_ledger_quarantined_rows": float(self.quarantined),
            "tollway_ledger_spool_ok": 1.0 if self.spool_ok else 0.0,
            "tollway_ledger_database_ok": 1.0 if self.database_ok else 0.0,
        }
