"""Rate limits: requests per minute, tokens per minute, concurrent requests. Pure logic (counters and their
atomic updates live in the backends).

**Algorithm: exact sliding window (a log).** Each admitted request is an entry stamped with the backend's
clock (Redis ``TIME``); a request is admitted iff the entries of the last 60 s plus itself stay within the
limit — for TPM, iff the tokens of those entries plus its worst-case tokens do. So in *every* 60-second
interval at most ``rpm`` requests (``tpm`` tokens) are admitted: no fixed-window boundary burst, no
approximation. At settlement the request's TPM entry is corrected to the tokens actually used. Concurrency
is a set of in-flight leases (released at settlement, expiring if their process dies).

**Headers** (OpenAI's names), for the most constrained requests rule and tokens rule that apply:
``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` and the
``-tokens`` variants. ``reset`` is the time until the window is back to full capacity (the window length
right after an admission). A refusal is 429 ``rate_limit_exceeded`` naming the rule, with ``retry-after``
(seconds, rounded up) and ``retry-after-ms``: exactly when the request would fit again.
"""

from __future__ import annotations

import hashlib
import math

from tollway.core.errors import GatewayError
from tollway.limits.backend import WINDOW_MS, RateFailure, RateKind, RateSlot
from tollway.limits.rules import SCOPE_WORDS, RateRule, Target

KIND_WORDS: dict[RateKind, str] = {"r": "requests per min (RPM)", "t": "tokens per min (TPM)",
                                   "c": "concurrent requests"}


def rate_key(rule: RateRule, kind: RateKind, entity_id: str) -> str:
    material = f"r\x00{rule.id}\x00{kind}\x00{entity_id}".encode()
    return hashlib.sha256(material).hexdigest()[:40]


def duration(ms: int) -> str:
    """Go-style durations as OpenAI sends them: ``20ms``, ``1.5s``, ``6m0s``."""
    ms = max(ms, 0)
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes}m" + (f"{rest / 1000:.3f}".rstrip("0").rstrip(".") or "0") + "s"


def slots(rule: RateRule, entity_id: str, tokens: int) -> list[RateSlot]:
    out: list[RateSlot] = []
    if rule.rpm is not None:
        out.append(RateSlot(rate_key(rule, "r", entity_id), "r", rule.rpm, 1))
    if rule.tpm is not None:
        out.append(RateSlot(rate_key(rule, "t", entity_id), "t", rule.tpm, tokens))
    if rule.max_concurrent is not None:
        out.append(RateSlot(rate_key(rule, "c", entity_id), "c", rule.max_concurrent, 1))
    return out


def headers(rates: list[RateSlot], used: list[int], admitted: bool) -> list[tuple[bytes, bytes]]:
    """The x-ratelimit-* headers of the most constrained requests and tokens windows. ``used`` includes
    this request when it was admitted."""
    out: list[tuple[bytes, bytes]] = []
    for kind, suffix in (("r", b"requests"), ("t", b"tokens")):
        best: tuple[int, int] | None = None
        for slot, n in zip(rates, used, strict=True):
            if slot.kind != kind:
                continue
            remaining = max(slot.limit - n, 0)
            if best is None or (remaining, slot.limit) < best:
                best = (remaining, slot.limit)
        if best is None:
            continue
        remaining, limit = best
        reset = duration(WINDOW_MS) if admitted or remaining < limit else "0s"
        out.append((b"x-ratelimit-limit-" + suffix, str(limit).encode()))
        out.append((b"x-ratelimit-remaining-" + suffix, str(remaining).encode()))
        out.append((b"x-ratelimit-reset-" + suffix, reset.encode()))
    return out


def refusal(rule: RateRule, target: Target, slot: RateSlot, failure: RateFailure,
            header_pairs: list[tuple[bytes, bytes]]) -> GatewayError:
    who = f"{SCOPE_WORDS[target.scope]} {target.name} (rule {rule.id})"
    retry_ms = failure.retry_ms if failure.retry_ms >= 0 else slot.window_ms
    wait = duration(retry_ms)
    if slot.kind == "c":
        message = (f"Concurrency limit reached for {who}: {failure.used} requests in flight, limit "
                   f"{slot.limit}. Please retry when one finishes.")
    elif failure.retry_ms < 0:
        message = (f"Request too large for {who} on {KIND_WORDS[slot.kind]}: Limit {slot.limit}, Requested "
                   f"{slot.cost}. Lower max_output_tokens or shorten the input.")
    else:
        message = (f"Rate limit reached for {who} on {KIND_WORDS[slot.kind]}: Limit {slot.limit}, Used "
                   f"{failure.used}, Requested {slot.cost}. Please try again in {wait}.")
    hdrs = {name.decode(): value.decode() for name, value in header_pairs}
    hdrs["retry-after"] = str(max(1, math.ceil(retry_ms / 1000)))
    hdrs["retry-after-ms"] = str(max(retry_ms, 0))
    hdrs["x-tollway-rate-limit-rule"] = rule.id
    return GatewayError(429, message, type="rate_limit_error", code="rate_limit_exceeded", headers=hdrs)
