"""CLI mirrors of the common admin operations, working directly against the configured database
(``--config`` / ``DATABASE_URL``); running gateways pick the changes up within a second (the tenancy
revision is bumped like the admin API does)::

    tollway orgs create acme --name "Acme"
    tollway teams create --org acme search
    tollway projects create --team acme/search rerank
    tollway keys create --project acme/rerank --scopes responses,chat --models 'anthropic/*' --expires 30d
    tollway keys list --org acme
    tollway keys revoke <key id>
    tollway credentials set --org acme --provider anthropic          # secret read from stdin / prompt
    TOLLWAY_NEW_MASTER_KEY=... tollway credentials rotate-master-key  # old key from TOLLWAY_MASTER_KEY

References take an id or a slug path (``acme``, ``acme/search``). Output is JSON on stdout. The
operations themselves live in :mod:`tollway.admin.cli_ops` (imported only when one runs, so ``tollway
--help`` stays fast).
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tollway.tenancy.keys import DEFAULT_SCOPES, SCOPES

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str) -> datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` from now, or an ISO 8601 time (UTC if it names no zone)."""
    match = _DURATION.match(text.strip())
    if match:
        return datetime.now(UTC) + timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a duration (30d, 12h) or ISO time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _run(args: argparse.Namespace, operation: str) -> int:
    from tollway.admin import cli_ops

    code: int = cli_ops.run(args, operation)
    return code


# ---- parser -----------------------------------------------------------------------------------------


def _command(parent: Any, name: str, help_text: str, operation: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--config", help="YAML config file (default: ./tollway.yaml if present, else env only)")
    parser.set_defaults(func=lambda args: _run(args, operation))
    return parser


def register(sub: Any) -> None:
    """Add ``orgs``, ``teams``, ``projects``, ``keys`` and ``credentials`` to the ``tollway`` CLI."""
    orgs = sub.add_parser("orgs", help="organizations").add_subparsers(dest="orgs_command", required=True)
    p = _command(orgs, "create", "create an organization", "orgs_create")
    p.add_argument("slug")
    p.add_argument("--name")

    teams = sub.add_parser("teams", help="teams").add_subparsers(dest="teams_command", required=True)
    p = _command(teams, "create", "create a team in an organization", "teams_create")
    p.add_argument("slug")
    p.add_argument("--org", required=True, help="organization id or slug")
    p.add_argument("--name")

    projects = sub.add_parser("projects", help="projects").add_subparsers(dest="projects_command", required=True)
    p = _command(projects, "create", "create a project in an organization or team", "projects_create")
    p.add_argument("slug")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--org", help="organization id or slug")
    where.add_argument("--team", help="team id or org-slug/team-slug")
    p.add_argument("--name")

    keys = sub.add_parser("keys", help="virtual API keys").add_subparsers(dest="keys_command", required=True)
    p = _command(keys, "create", "create a key (printed once)", "keys_create")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--org", help="organization id or slug")
    where.add_argument("--team", help="team id or org-slug/team-slug")
    where.add_argument("--project", help="project id or org-slug/project-slug")
    p.add_argument("--name", default="cli", help="a label for the key")
    p.add_argument("--scopes", help=f"comma-separated, of {', '.join(SCOPES)} "
                   f"(default {','.join(DEFAULT_SCOPES)})")
    p.add_argument("--models", help="comma-separated allowed model globs, e.g. 'anthropic/*,gpt-4o*'")
    p.add_argument("--expires", type=parse_expiry, help="30d, 12h, 2w or an ISO 8601 time")
    p.add_argument("--end-user", help="bind the key to this end user (external id)")
    p.add_argument("--test", action="store_true", help="a tw_test_ key")
    p = _command(keys, "list", "list keys (never their secrets)", "keys_list")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--org")
    where.add_argument("--team")
    where.add_argument("--project")
    p.add_argument("--status", choices=("active", "revoked", "expired"))
    p = _command(keys, "revoke", "revoke a key", "keys_revoke")
    p.add_argument("key_id")

    creds = sub.add_parser("credentials", help="BYOK provider credentials").add_subparsers(
        dest="credentials_command", required=True)
    p = _command(creds, "set", "set an org's or project's provider key (read from stdin or a prompt)",
                 "credentials_set")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--org", help="organization id or slug")
    where.add_argument("--project", help="project id or org-slug/project-slug")
    p.add_argument("--provider", required=True)
    p.add_argument("--secret-env", help="read the secret from this environment variable instead")
    p = _command(creds, "rotate-master-key", "re-wrap every credential's data key with a new master key", "rotate")
    p.add_argument("--old-env", default="TOLLWAY_MASTER_KEY", help="variable holding the current master key")
    p.add_argument("--new-env", default="TOLLWAY_NEW_MASTER_KEY", help="variable holding the new master key")
