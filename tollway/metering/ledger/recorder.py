"""The ledger's :class:`~tollway.core.steps.Recorder`: every exchange record becomes one spooled row."""

from __future__ import annotations

from tollway.core.context import ExchangeRecord
from tollway.metering.ledger.entries import to_row
from tollway.metering.ledger.spool import Spool


class LedgerRecorder:
    """``record`` is O(1) and never blocks: the record becomes a plain dict (attribute reads) and goes on
    the spool thread's queue; encoding, the disk write and the fsync happen in that thread."""

    __slots__ = ("_append",)

    def __init__(self, spool: Spool) -> None:
        self._append = spool.append

    def record(self, record: ExchangeRecord) -> None:
        self._append(to_row(record))
