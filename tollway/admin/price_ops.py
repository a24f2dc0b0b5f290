"""The price table as the admin API shows it, and per-model price overrides kept in the database.

Overrides are stored as decimal strings (USD per 1M tokens) and applied live in every process (the
tenancy snapshot carries them; :class:`tollway.tenancy.service.PriceOverrides` installs them with
:meth:`~tollway.metering.pricing.PriceTable.set_overrides`), on top of the config file's ``prices:``.
A new override is validated against the same table before it is stored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tollway.admin.store import AdminStore, Caller, bad_request, forbidden, not_found, row_dict
from tollway.metering.pricing import LIMIT_FIELDS, PRICE_FIELDS, ModelPrice, PriceTable
from tollway.tenancy.models import PriceOverrideRow, table, utcnow

PRICES = table(PriceOverrideRow)


def price_json(price: ModelPrice) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (*PRICE_FIELDS, *LIMIT_FIELDS):
        value = getattr(price, name)
        if value is not None:
            out[name] = str(value) if isinstance(value, Decimal) else value
    return out


def override_key(provider: str, model: str) -> str:
    if not provider or not model or "/" in provider:
        raise bad_request("an override is addressed as <provider>/<model id>", "model")
    return f"{provider}/{model}"


def pricing_view(prices: PriceTable, provider: str | None = None, model: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"version": prices.version, "table_version": prices.table_version,
                           "source": prices.source, "unit": "USD per 1M tokens"}
    if provider is not None and model is not None:
        key = prices.resolve(provider, model)
        price = prices.lookup(provider, model)
        out["lookup"] = {"provider": provider, "model": model, "priced_as": key,
                         "price": None if price is None else price_json(price)}
    elif provider is not None:
        models: dict[str, Any] = {}
        for name in prices.provider_models(provider):
            price = prices.lookup(provider, name)
            if price is not None:
                models[name] = price_json(price)
        out["provider"] = provider
        out["models"] = models
    return out


async def list_overrides(store: AdminStore) -> list[dict[str, Any]]:
    async with store.read() as conn:
        return [row_dict(r, ("key", "spec", "updated_at"))
                for r in await conn.execute(select(PRICES).order_by(PRICES.c.key))]


async def set_override(store: AdminStore, caller: Caller, prices: PriceTable,
                       configured: Mapping[str, Mapping[str, object]], key: str,
                       spec: Mapping[str, object]) -> dict[str, Any]:
    if not caller.is_master:
        raise forbidden("Only the master key can change prices.")
    stored = {name: str(value) if isinstance(value, Decimal) else value for name, value in spec.items()
              if value is not None}
    async with store.write() as conn:
        current = {r.key: dict(r.spec) for r in await conn.execute(select(PRICES.c.key, PRICES.c.spec))}
        trial = copy.copy(prices)  # shares the shipped table; set_overrides replaces only the copy's overrides
        try:
            trial.set_overrides({**configured, **current, key: stored})
        except ValueError as exc:
            text = str(exc)
            if "'input' and 'output'" in text:
                field: str | None = "input" if "input" not in stored else "output"
            else:
                field = next((name for name in stored if f".{name}:" in text), None)
            raise bad_request(text, field) from exc
        insert = pg_insert(PRICES) if conn.dialect.name == "postgresql" else sqlite_insert(PRICES)
        now = utcnow()
        await conn.execute(insert.values(key=key, spec=stored, updated_at=now).on_conflict_do_update(
            index_elements=[PRICES.c.key], set_={"spec": stored, "updated_at": now}))
    return {"key": key, "spec": stored, "version": prices.version}


async def delete_override(store: AdminStore, caller: Caller, key: str) -> None:
    if not caller.is_master:
        raise forbidden("Only the master key can change prices.")
    async with store.write() as conn:
        result = await conn.execute(delete(PRICES).where(PRICES.c.key == key))
        if result.rowcount == 0:
            raise not_found("price override", key)
