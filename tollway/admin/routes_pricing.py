"""Admin routes for the price table and per-model overrides."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from tollway.admin import price_ops as p
from tollway.admin import schemas as s
from tollway.admin.deps import Context, Reader, Writer
from tollway.admin.routes_tree import listing

router = APIRouter(tags=["pricing"])


@router.get("/pricing", response_model=s.Pricing, response_model_exclude_none=True,
            summary="The price table: versions, one model's price (provider+model) or a provider's models")
async def pricing(ctx: Context, caller: Reader, provider: str | None = None, model: str | None = None) -> Any:
    return p.pricing_view(ctx.prices, provider, model)


@router.get("/pricing/overrides", response_model=s.ListOf[s.PriceOverride], response_model_exclude_none=True)
async def list_overrides(ctx: Context, caller: Reader) -> dict[str, Any]:
    return listing(await p.list_overrides(ctx.store))


@router.put("/pricing/overrides/{provider}/{model:path}", response_model=s.PriceOverride,
            response_model_exclude_none=True, summary="Set a model's price override (applied live)")
async def set_override(provider: str, model: str, body: s.PriceSpec, ctx: Context, caller: Writer) -> Any:
    key = p.override_key(provider, model)
    return await p.set_override(ctx.store, caller, ctx.prices, ctx.configured_prices, key,
                                body.model_dump(exclude_none=True))


@router.delete("/pricing/overrides/{provider}/{model:path}", status_code=204)
async def delete_override(provider: str, model: str, ctx: Context, caller: Writer) -> Response:
    await p.delete_override(ctx.store, caller, p.override_key(provider, model))
    return Response(status_code=204)
