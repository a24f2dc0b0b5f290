"""The spool's on-disk unit: a *group* — every row of one group commit in one SQLite row.

Storing a group as one blob costs one B-tree insert and, once every row of it is shipped, one delete —
instead of one insert, one index lookup and one delete per row. A group's payload is one line per row::

    <entry id>\\t<created_at>\\t<the row as orjson>\\n...

(orjson never writes a raw newline or tab, so the separators are unambiguous). A row is addressed by a
*composite seq*: ``group seq * 65536 + its index in the group``. A row moved to quarantine leaves an empty
line (a tombstone) so the others keep their index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tollway.core.ids import ordered_hex
from tollway.metering.ledger.entries import encode_row

GROUP_SHIFT = 16
MAX_GROUP_ROWS = (1 << GROUP_SHIFT) - 1
INDEX_MASK = MAX_GROUP_ROWS


@dataclass(slots=True, frozen=True)
class SpooledRow:
    seq: int  # composite: group seq << 16 | index
    entry_id: str
    created_at: float
    payload: bytes


def new_entry_id() -> str:
    """32 hex characters, time-ordered (nanoseconds, then 64 random bits)."""
    return ordered_hex(8)


def as_bytes(blob: bytes | str) -> bytes:
    """A BLOB column as read back (SQLite hands back text for a value written as text)."""
    return blob if isinstance(blob, bytes) else blob.encode()


def format_line(entry_id: str, created_at: float, payload: bytes) -> bytes:
    return f"{entry_id}\t{created_at!r}\t".encode() + payload


def encode_line(row: dict[str, Any], entry_id: str | None = None) -> bytes:
    """One row as a group line (raises TypeError/ValueError/KeyError for what is not a ledger row)."""
    return format_line(entry_id or new_entry_id(), float(row["created_at"]), encode_row(row))


def join_lines(lines: Iterable[bytes]) -> bytes:
    return b"\n".join(lines)


def line_created_at(line: bytes) -> float:
    return float(line.split(b"\t", 2)[1])


def decode_group(group_seq: int, payload: bytes) -> list[SpooledRow]:
    """The rows of one group. A damaged line still yields a row (its payload is what is left), so the
    shipper quarantines it instead of the whole group being stuck."""
    base = group_seq << GROUP_SHIFT
    out: list[SpooledRow] = []
    for i, line in enumerate(payload.split(b"\n")):
        if not line:  # a tombstone: the row was moved to quarantine
            continue
        parts = line.split(b"\t", 2)
        if len(parts) == 3:
            try:
                out.append(SpooledRow(base | i, parts[0].decode("ascii"), float(parts[1]), parts[2]))
                continue
            except (UnicodeDecodeError, ValueError):
                pass
        out.append(SpooledRow(base | i, f"damaged-{group_seq}-{i}", 0.0, line))
    return out


def split_seq(seq: int) -> tuple[int, int]:
    """Composite seq -> (group seq, index)."""
    return seq >> GROUP_SHIFT, seq & INDEX_MASK
