"""The complete schema: every package's tables registered on the shared ``Base``. Alembic's env and the
schema tests import this module, so the metadata they compare is never missing a package's tables."""

from __future__ import annotations

import tollway.limits.models
import tollway.metering.ledger.tables
import tollway.tenancy.models  # noqa: F401  (imported for their tables)
from tollway.storage.models import Base

__all__ = ["Base"]
