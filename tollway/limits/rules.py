"""Budget and rate-limit rules: their validation (shared by the admin API and the database loader) and
the in-process :class:`RuleBook` the request path reads.

A rule applies to one entity (``scope_id``) or, with ``scope_id = "*"``, to *each* entity of its scope
separately (every key its own 60 RPM). Every rule that applies to a request is enforced; overlapping rules
therefore combine and the strictest one decides (a refusal names the rule).

* Budgets: scope ``org``, ``team``, ``project``, ``key`` or ``end_user``; ``limit_usd`` >= 0; ``period``
  ``daily`` / ``weekly`` / ``monthly`` / ``total``; ``alert_threshold`` a fraction in (0, 1] or null.
* Rate limits: scope ``key``, ``end_user``, ``project`` or ``model`` (the model as requested, as
  ``<provider>/<model>`` or the upstream id); ``rpm``, ``tpm``, ``max_concurrent``: positive integers or
  null, at least one set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tollway.core.context import Principal
from tollway.limits.money import MAX_USD, QUANTUM
from tollway.limits.periods import PERIODS

BUDGET_SCOPES = ("org", "team", "project", "key", "end_user")
RATE_SCOPES = ("key", "end_user", "project", "model")
WILDCARD = "*"
MAX_ID_LEN = 255
MAX_RATE = 10**12
SCOPE_WORDS = {"org": "org", "team": "team", "project": "project", "key": "key", "end_user": "end user",
               "model": "model"}


class RuleError(ValueError):
    """An invalid rule field: ``field`` names it (the admin API's ``param``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(slots=True, frozen=True)
class BudgetRule:
    id: str
    scope: str
    scope_id: str
    limit_usd: Decimal
    period: str
    alert_threshold: Decimal | None = None


@dataclass(slots=True, frozen=True)
class RateRule:
    id: str
    scope: str
    scope_id: str
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None


# ---- validation ------------------------------------------------------------------------------------


def _scope(data: Mapping[str, Any], scopes: tuple[str, ...]) -> tuple[str, str]:
    scope = data.get("scope")
    if scope not in scopes:
        raise RuleError("scope", f"must be one of {', '.join(scopes)}")
    scope_id = data.get("scope_id")
    if not isinstance(scope_id, str) or not scope_id.strip() or len(scope_id) > MAX_ID_LEN:
        raise RuleError("scope_id", f"must be a non-empty string of at most {MAX_ID_LEN} characters, or '*'")
    return str(scope), scope_id.strip()


def parse_usd(value: object, name: str) -> Decimal:
    """A non-negative USD amount from a JSON string or number (a float is read from its shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise RuleError(name, "must be a decimal number of USD (a string such as \"10.50\" or a number)")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation as exc:
        raise RuleError(name, "is not a decimal number") from exc
    if not amount.is_finite():
        raise RuleError(name, "must be finite")
    if amount < 0:
        raise RuleError(name, "must not be negative")
    if amount >= MAX_USD:
        raise RuleError(name, f"must be below {MAX_USD}")
    if amount != amount.quantize(QUANTUM):
        raise RuleError(name, "has more than 18 decimal places")
    return amount


def _threshold(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RuleError("alert_threshold", "must be a fraction in (0, 1] (e.g. 0.8) or null")
    try:
        fraction = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation as exc:
        raise RuleError("alert_threshold", "is not a number") from exc
    if not fraction.is_finite() or not 0 < fraction <= 1:
        raise RuleError("alert_threshold", "must be a fraction in (0, 1] (e.g. 0.8) or null")
    return fraction


def _positive(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(name, "must be a positive integer or null")
    if value <= 0:
        raise RuleError(name, "must be a positive integer or null")
    if value > MAX_RATE:
        raise RuleError(name, f"must be at most {MAX_RATE}")
    return value


def _unknown(data: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in data:
        if name not in allowed:
            raise RuleError(str(name), "unknown field")


BUDGET_FIELDS = frozenset({"scope", "scope_id", "limit_usd", "period", "alert_threshold"})
BUDGET_MUTABLE = frozenset({"limit_usd", "period", "alert_threshold"})
RATE_FIELDS = frozenset({"scope", "scope_id", "rpm", "tpm", "max_concurrent"})
RATE_MUTABLE = frozenset({"rpm", "tpm", "max_concurrent"})


def parse_budget(data: Mapping[str, Any], rule_id: str = "") -> BudgetRule:
    """A new budget from its JSON fields (``alert_threshold`` defaults to 0.8)."""
    _unknown(data, BUDGET_FIELDS)
    scope, scope_id = _scope(data, BUDGET_SCOPES)
    if "limit_usd" not in data:
        raise RuleError("limit_usd", "is required")
    limit = parse_usd(data["limit_usd"], "limit_usd")
    period = data.get("period", "monthly")
    if period not in PERIODS:
        raise RuleError("period", f"must be one of {', '.join(PERIODS)}")
    threshold = _threshold(data.get("alert_threshold", "0.8"))
    return BudgetRule(rule_id, scope, scope_id, limit, str(period), threshold)


def update_budget(rule: BudgetRule, changes: Mapping[str, Any]) -> BudgetRule:
    _unknown(changes, BUDGET_MUTABLE)
    limit = parse_usd(changes["limit_usd"], "limit_usd") if "limit_usd" in changes else rule.limit_usd
    period = changes.get("period", rule.period)
    if period not in PERIODS:
        raise RuleError("period", f"must be one of {', '.join(PERIODS)}")
    threshold = _threshold(changes["alert_threshold"]) if "alert_threshold" in changes else rule.alert_threshold
    return BudgetRule(rule.id, rule.scope, rule.scope_id, limit, str(period), threshold)


def parse_rate(data: Mapping[str, Any], rule_id: str = "") -> RateRule:
    _unknown(data, RATE_FIELDS)
    scope, scope_id = _scope(data, RATE_SCOPES)
    rule = RateRule(rule_id, scope, scope_id, _positive(data.get("rpm"), "rpm"), _positive(data.get("tpm"), "tpm"),
                    _positive(data.get("max_concurrent"), "max_concurrent"))
    _some_limit(rule)
    return rule


def update_rate(rule: RateRule, changes: Mapping[str, Any]) -> RateRule:
    _unknown(changes, RATE_MUTABLE)
    values = {name: _positive(changes[name], name) if name in changes else getattr(rule, name)
              for name in ("rpm", "tpm", "max_concurrent")}
    updated = RateRule(rule.id, rule.scope, rule.scope_id, **values)
    _some_limit(updated)
    return updated


def _some_limit(rule: RateRule) -> None:
    if rule.rpm is None and rule.tpm is None and rule.max_concurrent is None:
        raise RuleError("rpm", "set at least one of rpm, tpm, max_concurrent")


# ---- the request path's view -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Target:
    """One entity a request is attributed to: its scope, id and display name."""

    scope: str
    entity_id: str
    name: str


def budget_targets(principal: Principal | None, end_user_id: str | None,
                   end_user_external_id: str | None) -> Iterator[Target]:
    if principal is not None:
        yield Target("org", principal.org_id, principal.org_name)
        if principal.team_id is not None:
            yield Target("team", principal.team_id, principal.team_name or principal.team_id)
        if principal.project_id is not None:
            yield Target("project", principal.project_id, principal.project_name or principal.project_id)
        yield Target("key", principal.key_id, principal.key_name)
    if end_user_id is not None:
        yield Target("end_user", end_user_id, end_user_external_id or end_user_id)


@dataclass(slots=True)
class RuleBook:
    """Every rule, indexed by ``(scope, scope_id)``. Immutable once built; replaced as a whole."""

    revision: int = -1
    loaded: bool = False
    budgets: dict[tuple[str, str], list[BudgetRule]] = field(default_factory=dict)
    rates: dict[tuple[str, str], list[RateRule]] = field(default_factory=dict)
    by_id: dict[str, BudgetRule | RateRule] = field(default_factory=dict)

    @classmethod
    def build(cls, revision: int, budgets: list[BudgetRule], rates: list[RateRule]) -> RuleBook:
        book = cls(revision=revision, loaded=True)
        for b in budgets:
            book.budgets.setdefault((b.scope, b.scope_id), []).append(b)
            book.by_id[b.id] = b
        for r in rates:
            book.rates.setdefault((r.scope, r.scope_id), []).append(r)
            book.by_id[r.id] = r
        return book

    @property
    def empty(self) -> bool:
        return not self.budgets and not self.rates

    def budgets_for(self, targets: Iterator[Target]) -> list[tuple[BudgetRule, Target]]:
        out: list[tuple[BudgetRule, Target]] = []
        get = self.budgets.get
        for target in targets:
            for rule in get((target.scope, target.entity_id), ()):
                out.append((rule, target))
            for rule in get((target.scope, WILDCARD), ()):
                out.append((rule, target))
        return out

    def rates_for(self, targets: list[Target], models: tuple[str, ...]) -> list[tuple[RateRule, Target]]:
        """``models``: the requested name, ``<provider>/<model>`` and the upstream id (a ``*`` model rule
        counts each ``<provider>/<model>`` separately)."""
        out: list[tuple[RateRule, Target]] = []
        get = self.rates.get
        for target in targets:
            if target.scope == "org" or target.scope == "team":
                continue
            for rule in get((target.scope, target.entity_id), ()):
                out.append((rule, target))
            for rule in get((target.scope, WILDCARD), ()):
                out.append((rule, target))
        if ("model", WILDCARD) in self.rates or any(("model", m) in self.rates for m in models):
            seen: set[str] = set()
            for name in models:
                for rule in get(("model", name), ()):
                    if rule.id not in seen:
                        seen.add(rule.id)
                        out.append((rule, Target("model", name, name)))
            for rule in get(("model", WILDCARD), ()):
                out.append((rule, Target("model", models[1], models[1])))
        return out
