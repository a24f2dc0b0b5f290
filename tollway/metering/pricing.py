"""The price table: per-model USD prices, loaded once at startup, looked up per request.

All rates are USD **per 1,000,000 tokens** as :class:`~decimal.Decimal`, the unit of the shipped
``data/prices.json`` (built by ``scripts/build_price_table.py``) and of operator overrides.

Lookup (:meth:`PriceTable.lookup`) is deterministic. For a request ``(provider, model)`` it forms the
*aliases* of ``model`` (each step applied to every alias so far, duplicates dropped, in this order):

1. ``model`` itself;
2. without a provider prefix in the name (``openai/gpt-4o`` -> ``gpt-4o``; per provider, see
   ``_NAME_PREFIXES``; Hugging Face ids such as ``google/gemma-2-9b-it`` are left alone);
3. OpenAI fine-tunes ``ft:<base>:<org>::<id>`` -> ``ft:<base>``;
4. Vertex-style snapshots ``claude-3-5-sonnet@20240620`` -> ``claude-3-5-sonnet-20240620``;
5. Ollama ``<name>:latest`` -> ``<name>``;
6. Bedrock cross-region inference profiles ``us.``/``eu.``/``apac.``/``global.``/... -> the base model id.

Then it tries, first against the operator's overrides and only then against the shipped table:

* every alias exactly; then
* for every alias, its *family*: the alias without a dated snapshot suffix (``-2024-08-06``, ``-20250929``,
  ``@20240620``, for Bedrock also a trailing ``-v1:0``) or ``-latest``; the family key exactly, then the
  newest dated entry of that family (``claude-sonnet-4-5`` matches ``claude-sonnet-4-5-20250929`` when
  the table only has the dated id; several snapshots: the newest date, ties broken by the greatest key).

The first hit wins; no hit means the model is unpriced (``None``). Results are cached per
``(provider, model)``.

Overrides (config ``prices:``, keyed ``<provider>/<model id>``, USD per 1M tokens) amend the shipped entry
the same lookup finds for their key: fields they give replace the shipped ones, the rest are kept. An
override for a model the table does not price (e.g. any ``ollama/...``) must give ``input`` and
``output``. Because overrides are searched before the table, an override for ``anthropic/claude-x`` also
prices its snapshots ``claude-x-20250101`` etc.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources

import orjson

PRICE_FIELDS: tuple[str, ...] = (
    "input",
    "cached_input",
    "cache_write",
    "output",
    "reasoning",
    "input_above_200k",
    "output_above_200k",
    "cached_input_above_200k",
    "cache_write_above_200k",
)
LIMIT_FIELDS: tuple[str, ...] = ("max_input_tokens", "max_output_tokens")
_ALLOWED_FIELDS = frozenset(PRICE_FIELDS + LIMIT_FIELDS)

# Prefixes a client may put before the provider's own model id.
_NAME_PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("openai/",),
    "anthropic": ("anthropic/",),
    "gemini": ("gemini/", "models/", "google/"),
    "mistral": ("mistral/", "mistralai/"),
    "bedrock": ("bedrock/", "converse/"),
    "ollama": ("ollama/",),
    "huggingface": ("huggingface/",),
}
# Bedrock cross-region inference profile prefixes (geography or global).
_BEDROCK_GEOS = frozenset({"us", "us-gov", "eu", "apac", "au", "jp", "ca", "in", "global"})

_DATED = re.compile(r"^(?P<family>.+?)[-@](?P<date>\d{4}-\d{2}-\d{2}|\d{8})(?:-v\d+(?::\d+)?)?$")
_BEDROCK_VERSION = re.compile(r"^(?P<family>.+?)-v\d+(?::\d+)?$")
_LATEST = "-latest"
_CACHE_MAX = 8192


@dataclass(slots=True, frozen=True)
class ModelPrice:
    """USD per 1M tokens. ``input`` and ``output`` are always set; the rest may be None (see
    :func:`tollway.metering.cost.compute_cost` for the fallbacks)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    input_above_200k: Decimal | None = None
    output_above_200k: Decimal | None = None
    cached_input_above_200k: Decimal | None = None
    cache_write_above_200k: Decimal | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    # Resolved (input, cached, cache_write, output) rates: below / above the 200k-token prompt tier.
    # Precomputed so the per-request cost is a few multiplications.
    base_rates: tuple[Decimal, Decimal, Decimal, Decimal] = field(init=False, repr=False, compare=False)
    long_rates: tuple[Decimal, Decimal, Decimal, Decimal] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in PRICE_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"price {name} must be a finite, non-negative Decimal, got {value!r}")
        base = (
            self.input,
            self.input if self.cached_input is None else self.cached_input,
            self.input if self.cache_write is None else self.cache_write,
            self.output,
        )
        object.__setattr__(self, "base_rates", base)
        long: tuple[Decimal, Decimal, Decimal, Decimal] | None = None
        if self.input_above_200k is not None or self.output_above_200k is not None:
            long_input = self.input if self.input_above_200k is None else self.input_above_200k
            cached = self.cached_input_above_200k
            if cached is None:
                cached = long_input if self.cached_input is None else self.cached_input
            write = self.cache_write_above_200k
            if write is None:
                write = long_input if self.cache_write is None else self.cache_write
            long_output = self.output if self.output_above_200k is None else self.output_above_200k
            long = (long_input, cached, write, long_output)
        object.__setattr__(self, "long_rates", long)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, object], where: str, base: ModelPrice | None = None) -> ModelPrice:
        """Build from a table entry or an override: prices as decimal strings, ints, Decimals or floats (a
        float is read from its shortest repr, ``0.1`` -> ``Decimal("0.1")``). Fields that are absent or
        None are taken from ``base`` (the shipped entry an override amends); ``input`` and ``output`` must
        be known either way."""
        unknown = sorted(set(spec) - _ALLOWED_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown price field(s) {', '.join(unknown)}")
        p = {name: _decimal(spec.get(name), f"{where}.{name}") for name in PRICE_FIELDS}
        limits = {name: _limit(spec.get(name), f"{where}.{name}") for name in LIMIT_FIELDS}
        if base is not None:
            p = {name: getattr(base, name) if value is None else value for name, value in p.items()}
            limits = {name: getattr(base, name) if value is None else value for name, value in limits.items()}
        input_rate, output_rate = p["input"], p["output"]
        if input_rate is None or output_rate is None:
            raise ValueError(f"{where}: 'input' and 'output' prices are required (the model is not in the table)")
        return cls(
            input=input_rate,
            output=output_rate,
            cached_input=p["cached_input"],
            cache_write=p["cache_write"],
            reasoning=p["reasoning"],
            input_above_200k=p["input_above_200k"],
            output_above_200k=p["output_above_200k"],
            cached_input_above_200k=p["cached_input_above_200k"],
            cache_write_above_200k=p["cache_write_above_200k"],
            max_input_tokens=limits["max_input_tokens"],
            max_output_tokens=limits["max_output_tokens"],
        )


def _decimal(value: object, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a price, got {value!r}")
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"{where}: expected a price, got {value!r}")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise ValueError(f"{where}: not a decimal number: {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise ValueError(f"{where}: price must be finite and non-negative, got {value!r}")
    return result


def _limit(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _split_key(key: str) -> tuple[str, str]:
    provider, sep, model = key.partition("/")
    if not sep or not provider or not model:
        raise ValueError(f"price key {key!r} must be '<provider>/<model id>'")
    return provider, model


def _family(provider: str, model: str) -> tuple[str, str] | None:
    """``(family, rank)`` for a snapshot id, else None. ``rank`` orders a family's members: ``-latest``
    above every date (``YYYYMMDD``), a Bedrock version-only id (``-v1:0``) below every date."""
    match = _DATED.match(model)
    if match:
        return match["family"], match["date"].replace("-", "")
    if model.endswith(_LATEST) and len(model) > len(_LATEST):
        return model[: -len(_LATEST)], "~"
    if provider == "bedrock":
        match = _BEDROCK_VERSION.match(model)
        if match:
            return match["family"], ""
    return None


def _aliases(provider: str, model: str) -> list[str]:
    out = [model]

    def extend(step: Callable[[str], str | None]) -> None:
        for alias in list(out):
            new = step(alias)
            if new and new not in out:
                out.append(new)

    prefixes = _NAME_PREFIXES.get(provider, (f"{provider}/",))
    extend(lambda m: next((m[len(p) :] for p in prefixes if m.startswith(p) and len(m) > len(p)), None))
    if provider == "openai":
        extend(lambda m: ":".join(m.split(":")[:2]) if m.startswith("ft:") and m.count(":") > 1 else None)
    extend(lambda m: m.replace("@", "-") if "@" in m else None)
    if provider == "ollama":
        extend(lambda m: m[: -len(":latest")] if m.endswith(":latest") else None)
    if provider == "bedrock":
        extend(lambda m: m.partition(".")[2] if m.partition(".")[0] in _BEDROCK_GEOS else None)
    return out


class _Index:
    """Exact entries plus, per family key, the key of the family's newest dated entry."""

    __slots__ = ("entries", "newest")

    def __init__(self, entries: dict[str, ModelPrice]) -> None:
        self.entries = entries
        best: dict[str, tuple[str, str]] = {}
        for key in entries:
            provider, model = _split_key(key)
            fam = _family(provider, model)
            if fam is None:
                continue
            family_key = f"{provider}/{fam[0]}"
            rank = (fam[1], key)
            if family_key not in best or rank > best[family_key]:
                best[family_key] = rank
        self.newest = {family_key: rank[1] for family_key, rank in best.items()}

    def find(self, provider: str, aliases: Sequence[str]) -> str | None:
        return self.exact(provider, aliases) or self.family(provider, aliases)

    def exact(self, provider: str, aliases: Iterable[str]) -> str | None:
        for alias in aliases:
            key = f"{provider}/{alias}"
            if key in self.entries:
                return key
        return None

    def family(self, provider: str, aliases: Iterable[str]) -> str | None:
        for alias in aliases:
            fam = _family(provider, alias)
            family_key = f"{provider}/{alias if fam is None else fam[0]}"
            if fam is not None and family_key in self.entries:
                return family_key
            newest = self.newest.get(family_key)
            if newest is not None:
                return newest
        return None


class PriceTable:
    """The shipped prices plus operator overrides. Build once at startup with :meth:`load`.

    ``table_version`` is the shipped table's version. ``version`` is what cost records carry: the
    table version, plus ``+local.<digest>`` of the overrides when there are any, so a recorded cost
    always names the exact prices it used.
    """

    __slots__ = ("_by_provider", "_cache", "_overrides", "_table", "source", "table_version", "version")

    def __init__(
        self,
        version: str,
        models: Mapping[str, Mapping[str, object]],
        overrides: Mapping[str, Mapping[str, object]] | None = None,
        source: str = "",
    ) -> None:
        for key in (*models, *(overrides or {})):
            _split_key(key)
        table = {key: ModelPrice.from_mapping(spec, key) for key, spec in models.items()}
        self._table = _Index(table)
        self.table_version = version
        self.source = source
        self.set_overrides(overrides or {})

    def set_overrides(self, overrides: Mapping[str, Mapping[str, object]]) -> None:
        """Replace every operator override (config ``prices:`` plus the admin API's) at runtime. All of
        them are validated before any is applied: a ValueError leaves the table as it was."""
        over: dict[str, ModelPrice] = {}
        for key, spec in overrides.items():
            provider, model = _split_key(key)
            base_key = self._table.find(provider, _aliases(provider, model))
            base = None if base_key is None else self._table.entries[base_key]
            over[key] = ModelPrice.from_mapping(spec, f"prices.{key}", base)
        by_provider: dict[str, set[str]] = {}
        for key in (*self._table.entries, *over):
            provider, model = _split_key(key)
            by_provider.setdefault(provider, set()).add(model)
        self._overrides = _Index(over)
        self.version = self.table_version if not over else f"{self.table_version}+local.{_digest(over)}"
        self._by_provider = {provider: sorted(models_) for provider, models_ in by_provider.items()}
        self._cache: dict[tuple[str, str], tuple[str, ModelPrice] | None] = {}

    @classmethod
    def load(cls, overrides: Mapping[str, Mapping[str, object]] | None = None) -> PriceTable:
        """Read the packaged ``data/prices.json`` and apply ``overrides`` (``{"<provider>/<model>":
        {"input": "3", "output": "15", ...}}``, USD per 1M tokens). Raises ValueError on a bad table or
        override (a configuration error, reported at startup)."""
        raw = resources.files("tollway.metering").joinpath("data", "prices.json").read_bytes()
        return cls.from_json(raw, overrides)

    @classmethod
    def from_json(cls, raw: bytes | str, overrides: Mapping[str, Mapping[str, object]] | None = None) -> PriceTable:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"price table is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ValueError("price table must be an object with a 'models' object")
        if data.get("currency") != "USD" or data.get("unit") != "per_1m_tokens":
            raise ValueError("price table must be in USD per_1m_tokens")
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ValueError("price table has no version")
        source = data.get("source")
        return cls(version, data["models"], overrides, source if isinstance(source, str) else "")

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` at ``provider``, or None if unpriced. See the module docstring."""
        match = self._match(provider, model)
        return None if match is None else match[1]

    def resolve(self, provider: str, model: str) -> str | None:
        """The key (``<provider>/<model id>``) :meth:`lookup` prices ``model`` as, or None if unpriced."""
        match = self._match(provider, model)
        return None if match is None else match[0]

    def _match(self, provider: str, model: str) -> tuple[str, ModelPrice] | None:
        cache_key = (provider, model)
        try:
            return self._cache[cache_key]
        except KeyError:
            pass
        aliases = _aliases(provider, model)
        match: tuple[str, ModelPrice] | None = None
        for index in (self._overrides, self._table):
            key = index.find(provider, aliases)
            if key is not None:
                match = (key, index.entries[key])
                break
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[cache_key] = match
        return match

    def provider_models(self, provider: str) -> list[str]:
        """Priced model ids of ``provider`` (table and overrides), sorted; for "did you mean"."""
        return list(self._by_provider.get(provider, ()))


def _digest(prices: Mapping[str, ModelPrice]) -> str:
    canonical = {
        key: {name: str(getattr(price, name)) for name in PRICE_FIELDS if getattr(price, name) is not None}
        for key, price in prices.items()
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
