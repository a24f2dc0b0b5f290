"""BYOK selection on the request path: project beats org beats the gateway; undecryptable → 503."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.admin import credential_ops, directory
from tollway.admin.store import MASTER, AdminStore
from tollway.core.context import Principal, RequestContext
from tollway.core.errors import GatewayError
from tollway.providers.base import ProviderSettings
from tollway.tenancy.cache import TenancyCache
from tollway.tenancy.credentials import TenantCredentials
from tollway.tenancy.crypto import Keyring

MASTER_KEY = "byok-master-key-0123456789"
GATEWAY = ProviderSettings(name="anthropic", kind="anthropic", base_url="http://x", api_key="sk-gateway",
                           headers={"h": "1"})


def ctx(org: str, project: str | None = None) -> RequestContext:
    c = RequestContext(request_id="r", started=time.perf_counter())
    c.principal = Principal(key_id="k", key_name="k", org_id=org, org_name="o", project_id=project)
    return c


async def _setup(store: AdminStore) -> dict[str, Any]:
    org = await directory.create_org(store, MASTER, "acme", "Acme")
    other = await directory.create_org(store, MASTER, "other", "Other")
    p1 = await directory.create_project(store, MASTER, "p1", "P1", org_id=org["id"])
    p2 = await directory.create_project(store, MASTER, "p2", "P2", org_id=org["id"])
    ring = Keyring.from_secrets(MASTER_KEY)
    await credential_ops.set_credential(store, MASTER, ring, provider="anthropic", secret="sk-org-acme",
                                        org_id=org["id"])
    await credential_ops.set_credential(store, MASTER, ring, provider="anthropic", secret="sk-project-p1",
                                        project_id=p1["id"])
    return {"org": org["id"], "other": other["id"], "p1": p1["id"], "p2": p2["id"]}


async def test_selection(engine: AsyncEngine, store: AdminStore) -> None:
    ids = await _setup(store)
    cache = TenancyCache(engine)
    creds = TenantCredentials(Keyring.from_secrets(MASTER_KEY))
    cache.subscribe(creds.on_snapshot)
    await cache.refresh()
    assert creds.provider_settings(ctx(ids["org"], ids["p1"]), GATEWAY).api_key == "sk-project-p1"
    org_level = creds.provider_settings(ctx(ids["org"], ids["p2"]), GATEWAY)
    assert org_level.api_key == "sk-org-acme" and org_level.headers == {"h": "1"} and org_level.name == "anthropic"
    assert "sk-org-acme" not in (org_level.api_key_source or "")
    assert creds.provider_settings(ctx(ids["other"]), GATEWAY) is GATEWAY
    openai = ProviderSettings(name="openai", kind="openai_responses", base_url="http://x", api_key="sk-gw-openai")
    assert creds.provider_settings(ctx(ids["org"], ids["p1"]), openai) is openai
    assert GATEWAY.api_key == "sk-gateway"  # the shared settings are never mutated
    no_principal = RequestContext(request_id="r", started=0.0)
    assert creds.provider_settings(no_principal, GATEWAY) is GATEWAY
    # Replacing a credential is picked up on the next snapshot.
    await credential_ops.set_credential(store, MASTER, Keyring.from_secrets(MASTER_KEY), provider="anthropic",
                                        secret="sk-org-acme-2", org_id=ids["org"])
    await cache.refresh()
    assert creds.provider_settings(ctx(ids["org"], ids["p2"]), GATEWAY).api_key == "sk-org-acme-2"


@pytest.mark.parametrize("keyring", [None, Keyring.from_secrets("some-other-master-key-000")])
async def test_undecryptable_credential_fails_closed(engine: AsyncEngine, store: AdminStore,
                                                     keyring: Keyring | None,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    ids = await _setup(store)
    cache = TenancyCache(engine)
    creds = TenantCredentials(keyring)
    cache.subscribe(creds.on_snapshot)
    await cache.refresh()
    with pytest.raises(GatewayError) as info:
        creds.provider_settings(ctx(ids["org"], ids["p2"]), GATEWAY)
    assert (info.value.status, info.value.code) == (503, "credential_unavailable")
    assert "sk-org" not in info.value.message
    assert creds.provider_settings(ctx(ids["other"]), GATEWAY) is GATEWAY
    assert all("sk-org" not in r.getMessage() and "sk-org" not in str(r.__dict__) for r in caplog.records)


async def test_credential_validation(store: AdminStore) -> None:
    org = await directory.create_org(store, MASTER, "acme", "Acme")
    ring = Keyring.from_secrets(MASTER_KEY)
    for kwargs, param in (({"provider": "Bad Name"}, "provider"), ({"provider": "bedrock"}, "provider"),
                          ({"provider": "nope", "providers": {"anthropic"}}, "provider"),
                          ({"provider": "anthropic", "secret": "  "}, "secret")):
        args: dict[str, Any] = {"secret": "sk-x", "org_id": org["id"], **kwargs}
        with pytest.raises(GatewayError) as info:
            await credential_ops.set_credential(store, MASTER, ring, **args)
        assert (info.value.status, info.value.param) == (400, param)
    with pytest.raises(GatewayError) as info:
        await credential_ops.set_credential(store, MASTER, None, provider="anthropic", secret="x", org_id=org["id"])
    assert info.value.code == "master_key_required"
