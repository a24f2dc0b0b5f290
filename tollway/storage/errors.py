"""Storage failures, as gateway errors (the doors render them; routes need not translate)."""

from __future__ import annotations

from tollway.core.errors import GatewayError


class StorageUnavailableError(GatewayError):
    """The database could not serve a read or a delete (unreachable, timed out, failing)."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            503,
            f"The response store is temporarily unavailable ({operation}); retry shortly.",
            type="server_error",
            code="storage_unavailable",
        )
        self.operation = operation


class StoreBacklogFullError(GatewayError):
    """The write queue is at its bound (the database has been failing for a while); nothing was queued."""

    def __init__(self, pending_rows: int, pending_bytes: int) -> None:
        super().__init__(
            503,
            "The response store is not accepting writes (its write backlog is full); retry shortly.",
            type="server_error",
            code="storage_backlog_full",
        )
        self.pending_rows = pending_rows
        self.pending_bytes = pending_bytes
