"""Command line: ``tollway serve | mock | config check | config schema | db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import orjson

from tollway import __version__
from tollway.admin import cli as admin_cli
from tollway.logs import configure as configure_logging
from tollway.settings import ConfigError, Settings, config_json_schema, load_settings

CONFIG_ENV = "TOLLWAY_CONFIG"


def _load(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def app_factory() -> object:
    """Used by uvicorn workers (``--workers N``): rebuild the app from the same config file."""
    from tollway.app import create_app

    settings = _load(os.environ.get(CONFIG_ENV) or None)
    configure_logging(settings.log_level)
    return create_app(settings)


def _migrate_at_start(settings: Settings) -> bool:
    """Apply migrations. With the database unreachable: go on in spool mode when the config allows it
    (``start_without_database``), saying so; otherwise a clear message and False."""
    from tollway.storage.engine import DB_ERRORS
    from tollway.storage.migrate import upgrade
    from tollway.storage.urls import normalise_database_url

    try:
        upgrade(settings.database_url)
    except DB_ERRORS as exc:
        where = normalise_database_url(settings.database_url).split("@")[-1]  # never print credentials
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if settings.start_without_database:
            print(f"tollway: database {where} is unreachable at start-up ({reason}); serving anyway: usage is "
                  "spooled on disk and shipped when it returns, stored responses and admin writes fail until "
                  "then", file=sys.stderr)
            return True
        print(f"tollway: database {where} is unreachable at start-up ({reason}). Start it, fix DATABASE_URL, "
              "or set start_without_database: true to serve in spool mode.", file=sys.stderr)
        return False
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _load(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers)) if v}
    settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level)
    from tollway.limits.workers import check_workers  # workers > 1 need Redis for shared limits

    if (refusal := check_workers(settings)) is not None:
        print(f"tollway: {refusal}", file=sys.stderr)
        return 2
    if not _migrate_at_start(settings):
        return 2
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    if not settings.providers:
        print("tollway: no provider configured; serving the built-in `mock` model "
              "(set OPENAI_API_KEY / ANTHROPIC_API_KEY or use --config)", file=sys.stderr)
    print(f"tollway {__version__} listening on http://{settings.host}:{settings.port} "
          f"({settings.workers} worker{'s' if settings.workers > 1 else ''})", file=sys.stderr)
    common = {"host": settings.host, "port": settings.port, "loop": "uvloop", "http": "httptools",
              "access_log": False, "log_config": None, "lifespan": "on", "timeout_graceful_shutdown": 10,
              "proxy_headers": False, "server_header": False}
    if settings.workers > 1:
        uvicorn.run("tollway.cli:app_factory", factory=True, workers=settings.workers, **common)  # type: ignore[arg-type]
    else:
        from tollway.app import create_app

        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
    return 0


def cmd_mock(args: argparse.Namespace) -> int:
    from tollway.mock.app import MockDefaults, run

    configure_logging("info")
    print(f"tollway mock upstream on http://{args.host}:{args.port}/v1", file=sys.stderr)
    asyncio.run(run(args.host, args.port, MockDefaults(chunks=args.chunks, delay_ms=args.chunk_delay_ms)))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.path):
        print(f"tollway: {args.path}: no such file", file=sys.stderr)
        return 2
    settings = _load(args.path)
    print(f"{args.path}: ok ({len(settings.providers)} providers, {len(settings.models)} aliases)")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(orjson.dumps(config_json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from tollway.storage.migrate import upgrade

    settings = _load(args.config)
    upgrade(settings.database_url)
    print("database is at the latest revision", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollway", description="tollway: a fast, correct LLM gateway.")
    parser.add_argument("--version", action="version", version=f"tollway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway", description="Run the gateway (Open Responses at "
                           "/v1/responses, Chat Completions at /v1/chat/completions).")
    serve.add_argument("--config", help="YAML config file (default: ./tollway.yaml if present, else env only)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    mock = sub.add_parser("mock", help="run the deterministic mock upstream",
                          description="A deterministic upstream speaking the OpenAI Responses, OpenAI Chat "
                          "and Anthropic Messages wire formats, with scripted faults ([mock:fault=429] in the "
                          "last user message or the x-mock-scenario header).")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9100)
    mock.add_argument("--chunks", type=int, default=None, help="text deltas per streamed answer (default: a word each)")
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between streamed chunks")
    mock.set_defaults(func=cmd_mock)

    config = sub.add_parser("config", help="validate a config file or print its JSON Schema")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate a config file; exit 2 naming file, key and reason")
    check.add_argument("path")
    check.set_defaults(func=cmd_config_check)
    schema = csub.add_parser("schema", help="print the config JSON Schema")
    schema.set_defaults(func=cmd_config_schema)

    db = sub.add_parser("db", help="database maintenance")
    dsub = db.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply migrations to the configured database")
    up.add_argument("--config")
    up.set_defaults(func=cmd_db_upgrade)
    admin_cli.register(sub)  # orgs, teams, projects, keys, credentials
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
