"""The operations behind ``tollway orgs|teams|projects|keys|credentials`` (see :mod:`tollway.admin.cli`):
each loads the settings, migrates the database, runs against it with the master key's rights and prints
JSON."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tollway.admin import credential_ops, directory, key_ops
from tollway.admin.store import MASTER, AdminStore
from tollway.core.errors import GatewayError
from tollway.settings import KNOWN_PROVIDERS, ConfigError, Settings, load_settings
from tollway.storage.engine import create_engine
from tollway.tenancy.crypto import CredentialCryptoError, Keyring, rotate_master_key

Operation = Callable[[AdminStore, Settings, argparse.Namespace], Awaitable[Any]]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _print(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def run(args: argparse.Namespace, name: str) -> int:
    from tollway.storage.migrate import upgrade

    operation: Operation = OPERATIONS[name]
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 2
    upgrade(settings.database_url)

    async def go() -> Any:
        engine = create_engine(settings.database_url)
        try:
            return await operation(AdminStore(engine), settings, args)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(go())
    except GatewayError as exc:
        print(f"tollway: {exc.message}" + (f" ({exc.param})" if exc.param else ""), file=sys.stderr)
        return 1
    except (CredentialCryptoError, ValueError) as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        _print(result)
    return 0


async def _owner_ids(store: AdminStore, args: argparse.Namespace) -> dict[str, str | None]:
    async with store.read() as conn:
        if getattr(args, "project", None):
            return {"project_id": (await directory.resolve_project(conn, args.project)).id}
        if getattr(args, "team", None):
            return {"team_id": (await directory.resolve_team(conn, args.team)).id}
        if getattr(args, "org", None):
            return {"org_id": (await directory.resolve_org(conn, args.org)).id}
    return {}


async def _orgs_create(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    return await directory.create_org(store, MASTER, args.slug, args.name or args.slug)


async def _teams_create(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    owner = await _owner_ids(store, args)
    return await directory.create_team(store, MASTER, str(owner["org_id"]), args.slug, args.name or args.slug)


async def _projects_create(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    owner = await _owner_ids(store, args)
    return await directory.create_project(store, MASTER, args.slug, args.name or args.slug,
                                          org_id=owner.get("org_id"), team_id=owner.get("team_id"))


async def _keys_create(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    owner = await _owner_ids(store, args)
    created = await key_ops.create_key(
        store, MASTER, name=args.name, scopes=_csv(args.scopes) if args.scopes else None,
        allowed_models=_csv(args.models) if args.models else None, expires_at=args.expires,
        environment="test" if args.test else "live", end_user_external_id=args.end_user, **owner)
    print("tollway: this is the only time the key is shown; store it now", file=sys.stderr)
    return created


async def _keys_list(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    owner = await _owner_ids(store, args)
    return await key_ops.list_keys(store, MASTER, status=args.status, **owner)


async def _keys_revoke(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    return await key_ops.revoke_key(store, MASTER, args.key_id)


def _read_secret(args: argparse.Namespace) -> str:
    if args.secret_env:
        value = os.environ.get(args.secret_env)
        if not value:
            raise ValueError(f"environment variable {args.secret_env} is not set")
        return value
    if sys.stdin.isatty():
        return getpass.getpass(f"{args.provider} API key: ")
    return sys.stdin.readline().strip()


async def _credentials_set(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    master = settings.master_key
    keyring = None if master is None else Keyring.from_secrets(master.get_secret_value())
    owner = await _owner_ids(store, args)
    providers = {*KNOWN_PROVIDERS, *settings.providers, "mock"}
    return await credential_ops.set_credential(store, MASTER, keyring, provider=args.provider,
                                               secret=_read_secret(args), providers=providers,
                                               org_id=owner.get("org_id"), project_id=owner.get("project_id"))


async def _rotate(store: AdminStore, settings: Settings, args: argparse.Namespace) -> Any:
    old, new = os.environ.get(args.old_env), os.environ.get(args.new_env)
    if not old or not new:
        raise ValueError(f"set {args.old_env} (the current master key) and {args.new_env} (the new one)")
    count = await rotate_master_key(store.engine, old, new)
    print(f"tollway: re-wrapped {count} credential data key(s); now restart the gateways with "
          f"TOLLWAY_MASTER_KEY set to the new key", file=sys.stderr)
    return {"rewrapped": count}


OPERATIONS: dict[str, Operation] = {
    "orgs_create": _orgs_create,
    "teams_create": _teams_create,
    "projects_create": _projects_create,
    "keys_create": _keys_create,
    "keys_list": _keys_list,
    "keys_revoke": _keys_revoke,
    "credentials_set": _credentials_set,
    "rotate": _rotate,
}
