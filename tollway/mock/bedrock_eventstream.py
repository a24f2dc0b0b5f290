"""An encoder for AWS's binary ``application/vnd.amazon.eventstream`` framing (botocore only parses it).

One message::

    prelude:  total length (uint32) | headers length (uint32) | CRC32 of those 8 bytes (uint32)
    headers:  per header: name length (uint8) | name | value type (uint8, 7 = string) |
              value length (uint16) | value
    payload:  bytes
    trailer:  CRC32 of everything before it (uint32)

All integers are big-endian; the CRCs are zlib's CRC32. Only string header values are written (all the
Converse stream uses).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

_STRING = 7
_PRELUDE = struct.Struct(">II")
_UINT32 = struct.Struct(">I")
_UINT16 = struct.Struct(">H")
_MAX_NAME = 255
_MAX_VALUE = 65535


def _header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    if len(raw_name) > _MAX_NAME or len(raw_value) > _MAX_VALUE:
        raise ValueError(f"event stream header {name!r} is too long")
    return bytes((len(raw_name),)) + raw_name + bytes((_STRING,)) + _UINT16.pack(len(raw_value)) + raw_value


def encode_message(headers: Iterable[tuple[str, str]], payload: bytes) -> bytes:
    """One event stream message with string ``headers`` (in the order given) and ``payload``."""
    raw_headers = b"".join(_header(name, value) for name, value in headers)
    total = _PRELUDE.size + 4 + len(raw_headers) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(raw_headers))
    message = prelude + _UINT32.pack(zlib.crc32(prelude)) + raw_headers + payload
    return message + _UINT32.pack(zlib.crc32(message))


def event(event_type: str, payload: bytes) -> bytes:
    """An ``event`` message as Bedrock sends it (``:event-type``, ``:content-type``, ``:message-type``)."""
    return encode_message(
        ((":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")), payload
    )


def exception(exception_type: str, payload: bytes) -> bytes:
    """An ``exception`` message (e.g. ``throttlingException``) ending a stream."""
    return encode_message(
        (
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ),
        payload,
    )
