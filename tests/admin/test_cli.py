"""``tollway orgs|teams|projects|keys|credentials`` against a real database (in process)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from tollway.admin.cli import parse_expiry
from tollway.cli import main
from tollway.storage.engine import create_engine
from tollway.tenancy.crypto import Keyring, Sealed, credential_aad, open_sealed
from tollway.tenancy.models import ProviderCredential, table

OLD = "cli-master-key-0123456789"
NEW = "cli-master-key-rotated-000"


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("TOLLWAY_MASTER_KEY", OLD)

    def run(*argv: str, code: int = 0) -> Any:
        capsys.readouterr()
        assert main(list(argv)) == code
        out, err = capsys.readouterr()
        return orjson.loads(out) if code == 0 else err

    return run


def _credential_rows(url: str) -> list[Any]:
    async def read() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(select(table(ProviderCredential)))).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_cli_flow(cli: Any, migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    org = cli("orgs", "create", "acme", "--name", "Acme")
    team = cli("teams", "create", "--org", "acme", "search")
    project = cli("projects", "create", "--team", "acme/search", "rerank")
    assert (team["org_id"], project["team_id"], project["org_id"]) == (org["id"], team["id"], org["id"])
    key = cli("keys", "create", "--project", "acme/rerank", "--scopes", "responses,chat", "--models", "mock*",
              "--expires", "30d", "--name", "ci")
    assert key["key"].startswith("tw_live_") and key["scopes"] == ["responses", "chat"]
    assert key["allowed_models"] == ["mock*"] and key["project_id"] == project["id"]
    assert key["expires_at"] is not None
    test_key = cli("keys", "create", "--org", org["id"], "--test", "--end-user", "kiosk")
    assert test_key["key"].startswith("tw_test_") and test_key["end_user_id"].startswith("eu_")
    listed = cli("keys", "list", "--org", "acme")
    assert {k["id"] for k in listed} == {key["id"], test_key["id"]}
    assert all("key" not in k for k in listed)
    assert cli("keys", "revoke", key["id"])["status"] == "revoked"
    assert [k["id"] for k in cli("keys", "list", "--status", "revoked")] == [key["id"]]

    monkeypatch.setenv("ACME_ANTHROPIC", "sk-ant-cli-secret-abcd")
    cred = cli("credentials", "set", "--org", "acme", "--provider", "anthropic", "--secret-env", "ACME_ANTHROPIC")
    assert cred["last4"] == "abcd" and "sk-ant-cli" not in str(cred)
    monkeypatch.setenv("TOLLWAY_NEW_MASTER_KEY", NEW)
    assert cli("credentials", "rotate-master-key") == {"rewrapped": 1}
    (row,) = _credential_rows(migrated_url)
    sealed = Sealed(row.ciphertext, row.wrapped_key, row.kid)
    assert open_sealed(Keyring.from_secrets(NEW), sealed, credential_aad(row.id, row.owner_id, row.provider)) \
        == "sk-ant-cli-secret-abcd"


def test_cli_errors(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "No organization" in cli("teams", "create", "--org", "nope", "x", code=1)
    cli("orgs", "create", "acme")
    assert "already exists" in cli("orgs", "create", "acme", code=1)
    assert "unknown scope" in cli("keys", "create", "--org", "acme", "--scopes", "root", code=1)
    assert "No project" in cli("keys", "create", "--project", "acme/none", code=1)
    monkeypatch.delenv("TOLLWAY_MASTER_KEY")
    monkeypatch.setenv("S", "sk-x")
    assert "TOLLWAY_MASTER_KEY" in cli("credentials", "set", "--org", "acme", "--provider", "anthropic",
                                       "--secret-env", "S", code=1)
    assert "TOLLWAY_NEW_MASTER_KEY" in cli("credentials", "rotate-master-key", code=1)


def test_parse_expiry() -> None:
    now = datetime.now(UTC)
    assert abs(parse_expiry("30d") - (now + timedelta(days=30))) < timedelta(seconds=5)
    assert abs(parse_expiry("12h") - (now + timedelta(hours=12))) < timedelta(seconds=5)
    assert parse_expiry("2030-01-02T03:04:05Z") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_expiry("2030-01-02T03:04:05").tzinfo is UTC
    with pytest.raises(argparse.ArgumentTypeError):
        parse_expiry("soon")
