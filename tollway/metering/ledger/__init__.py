"""The usage ledger: one immutable row per request, never on the hot path and never lost.

record (event loop, O(1)) → :mod:`.spool` (local SQLite file, group commits in its own thread) →
:mod:`.shipper` (background task, batched, idempotent by entry id) → ``usage_ledger`` + ``usage_daily``
(:mod:`.tables`, :mod:`.rollups`) → :mod:`.query` for the admin API. :class:`.ledger.Ledger` wires it
together for one process; :class:`.stats.LedgerStats` is what ``/health/ready`` and metrics show.
"""
