"""Configuration: one YAML file (``--config``, else ``./tollway.yaml`` if present, else environment only),
validated by pydantic models whose JSON Schema is published by ``tollway config schema``.

Strings of the form ``os.environ/NAME`` anywhere in the YAML are replaced by that environment variable
(missing → a config error naming the key). Providers also register from the environment alone:
``OPENAI_API_KEY``/``OPENAI_BASE_URL`` and ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_REF = "os.environ/"
DEFAULT_CONFIG_FILE = "tollway.yaml"

# Built-in defaults per well-known provider name: adapter kind, base URL, env vars.
KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "openai": {
        "kind": "openai_responses",
        "base_url": "https://api.openai.com/v1",
        "key_env": "OPENAI_API_KEY",
        "url_env": "OPENAI_BASE_URL",
    },
    "anthropic": {
        "kind": "anthropic",
        "base_url": "https://api.anthropic.com/v1",
        "key_env": "ANTHROPIC_API_KEY",
        "url_env": "ANTHROPIC_BASE_URL",
    },
    "gemini": {
        "kind": "gemini",
        "base_url": "https://generativelanguage.googleapis.com/v1beta",
        "key_env": "GEMINI_API_KEY",
        "url_env": "GEMINI_BASE_URL",
    },
    "mistral": {
        "kind": "mistral",
        "base_url": "https://api.mistral.ai/v1",
        "key_env": "MISTRAL_API_KEY",
        "url_env": "MISTRAL_BASE_URL",
    },
    "ollama": {  # no key by default; registered when OLLAMA_BASE_URL is set or configured
        "kind": "ollama",
        "base_url": "http://127.0.0.1:11434",
        "key_env": "OLLAMA_API_KEY",
        "url_env": "OLLAMA_BASE_URL",
        "setup_env": "OLLAMA_BASE_URL",
    },
    "bedrock": {  # SigV4: credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
        "kind": "bedrock",
        "base_url": "https://bedrock-runtime.{region}.amazonaws.com",
        "key_env": "AWS_ACCESS_KEY_ID",
        "url_env": "BEDROCK_BASE_URL",
        "setup_env": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION)",
    },
    "huggingface": {
        "kind": "huggingface",
        "base_url": "https://router.huggingface.co/v1",
        "key_env": "HF_TOKEN",
        "url_env": "HF_BASE_URL",
    },
}
# Extra environment variables per provider, copied into ProviderConfig fields.
PROVIDER_ENV_FIELDS: dict[str, dict[str, str]] = {
    "gemini": {"GOOGLE_API_KEY": "api_key"},
    "bedrock": {"AWS_SECRET_ACCESS_KEY": "aws_secret_access_key", "AWS_SESSION_TOKEN": "aws_session_token",
                "AWS_REGION": "region", "AWS_DEFAULT_REGION": "region"},
}

AdapterKind = Literal[
    "openai_responses", "openai_chat", "anthropic", "gemini", "mistral", "ollama", "bedrock", "huggingface"
]


class ConfigError(Exception):
    """Invalid configuration; the message names the file, the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Strict):
    kind: AdapterKind | None = Field(
        default=None, description="Adapter kind; defaults by provider name (openai, anthropic) else openai_chat."
    )
    api_key: str | None = Field(default=None, description="Credential; use os.environ/NAME to reference env.")
    base_url: str | None = Field(default=None, description="API base URL including the version path (…/v1).")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream.")
    region: str | None = Field(default=None, description="Cloud region (Bedrock); env AWS_REGION.")
    aws_secret_access_key: str | None = Field(
        default=None, description="Bedrock secret key (api_key holds the access key id); env AWS_SECRET_ACCESS_KEY."
    )
    aws_session_token: str | None = Field(default=None, description="Bedrock session token; env AWS_SESSION_TOKEN.")


class PriceOverride(_Strict):
    """USD per 1M tokens; any field left out falls back to the shipped table (or the input rate)."""

    input: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    output: Decimal | None = None
    reasoning: Decimal | None = None

    @field_validator("*")
    @classmethod
    def _non_negative(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v < 0:
            raise ValueError("price must be >= 0")
        return v


class Timeouts(_Strict):
    connect: float = Field(default=10.0, gt=0, description="Seconds to connect to a provider.")
    read: float = Field(default=300.0, gt=0, description="Seconds of silence allowed between upstream bytes.")
    total: float = Field(default=900.0, gt=0, description="Seconds for a whole upstream exchange.")


class MockConfig(_Strict):
    enabled: bool | None = Field(
        default=None, description="Serve the built-in `mock` model; default: on when no provider is configured."
    )
    chunks: int | None = Field(
        default=None, ge=1, description="Text deltas per streamed mock answer (default: one per word)."
    )
    delay_ms: float = Field(default=0.0, ge=0, description="Delay between streamed mock chunks.")


class LimitsConfig(_Strict):
    """Budgets and rate limits (rules are managed through the admin API; see docs/limits.md)."""

    redis_failure_policy: Literal["open", "closed"] = Field(
        default="open",
        description="When Redis (REDIS_URL) is unreachable: `open` admits requests without budget or rate "
        "checks, `closed` refuses them with 503 limits_unavailable. Either way it is logged and counted.",
    )
    unpriced_policy: Literal["refuse", "admit"] = Field(
        default="refuse",
        description="A request under a budget whose model has no price: `refuse` (402 model_unpriced) or "
        "`admit` it unreserved, flagged with the x-tollway-budget: unpriced response header and a log line.",
    )
    budget_admission: Literal["fit", "cross"] = Field(
        default="fit",
        description="`fit`: admit only if the request's worst-case cost fits in what is left (no overspend "
        "beyond estimation error); `cross`: admit while anything is left (overspend <= one reservation).",
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone in which daily/weekly/monthly budget periods start."
    )
    webhook_url: str | None = Field(
        default=None, description="POST budget alerts (threshold crossed, exhausted) to this URL."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing webhook bodies (x-tollway-signature header)."
    )
    per_worker_fallback: bool = Field(
        default=False,
        description="Allow --workers > 1 without REDIS_URL: every worker then enforces every limit on its "
        "own (N workers admit up to N times each limit). Without it such a start is refused.",
    )
    lease_s: float = Field(
        default=30.0, ge=1, le=3600,
        description="Reservations and concurrency slots are leases renewed by their process every lease_s/3; "
        "a crashed process's leases expire after at most lease_s.",
    )
    rules_poll_s: float = Field(
        default=0.5, gt=0, le=60, description="Seconds between checks for budget / rate-limit rule changes."
    )
    reconcile_s: float = Field(
        default=60.0, gt=0, description="Seconds between reconciliations of budget spend against the ledger."
    )
    redis_timeout_s: float = Field(
        default=0.5, gt=0, le=30, description="Timeout of one Redis round trip on the request path."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    database_url: str = Field(default="sqlite+aiosqlite:///./tollway.db", description="SQLite file or PostgreSQL.")
    ledger_spool_path: str | None = Field(
        default=None,
        description="Usage-ledger spool: every usage row is written to this local SQLite file (WAL) first and "
        "shipped to the database in the background. Default: tollway-spool.db next to the SQLite database "
        "file, else ./tollway-spool.db. Each worker process claims its own file beside it "
        "(tollway-spool.0.db, tollway-spool.1.db, ...); rows left by a stopped or killed process are "
        "shipped by the next one. Keep it on a persistent local disk.",
    )
    ledger_direct: bool = Field(
        default=True,
        description="With a local SQLite database file: usage rows are written straight into it (one "
        "transaction and fsync per group of rows) instead of into the spool first; a group the database "
        "cannot take at that moment (locked, disk full) still goes to the spool and is shipped from there. "
        "No effect with PostgreSQL or an in-memory database.",
    )
    ledger_spool_max_rows: int = Field(
        default=1_000_000, ge=1,
        description="Most usage rows one worker's spool holds while the database is unreachable. When full, "
        "further rows are dropped (counted and logged) and /health/ready answers 503.",
    )
    ledger_spool_max_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1024 * 1024,
        description="Most bytes (live SQLite pages) one worker's spool holds; same policy as "
        "ledger_spool_max_rows when reached.",
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="Request body limit (413 above).")
    start_without_database: bool = Field(
        default=False,
        description="Serve even when the database is unreachable at start-up (usage spooled on disk); "
        "default: exit with a clear message.",
    )
    strict: bool = Field(default=False, description="Fail requests that cannot be carried to the provider exactly.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Alias catalog: alias -> provider/model (e.g. fast: anthropic/claude-haiku-4-5).",
    )
    prices: dict[str, PriceOverride] = Field(
        default_factory=dict, description="Per-model price overrides keyed provider/model, USD per 1M tokens."
    )
    timeouts: Timeouts = Field(default_factory=Timeouts)
    mock: MockConfig = Field(default_factory=MockConfig)
    master_key: SecretStr | None = Field(
        default=None,
        description="Admin API master key and root of BYOK encryption (env TOLLWAY_MASTER_KEY, >= 16 chars); "
        "when set, /v1 requires a virtual key.",
    )
    master_key_previous: SecretStr | None = Field(
        default=None,
        description="The previous master key during a rotation (env TOLLWAY_MASTER_KEY_PREVIOUS): BYOK "
        "credentials it wrapped still decrypt.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (env REDIS_URL); optional: pushes tenancy changes to every process, and holds "
        "budgets and rate limits shared by every worker and replica (without it they are per process).",
    )
    tenancy_poll_s: float = Field(
        default=0.25, gt=0, le=0.9, description="Seconds between checks for key/tenancy changes (revocation bound)."
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig,
        description="Budgets and rate limits: Redis failure policy, unpriced models, time zone, webhooks.",
    )

    @field_validator("models")
    @classmethod
    def _alias_targets(cls, v: dict[str, str]) -> dict[str, str]:
        for alias, target in v.items():
            if "/" not in target:
                raise ValueError(f"alias {alias!r}: target {target!r} must be provider/model")
        return v

    @property
    def mock_enabled(self) -> bool:
        if self.mock.enabled is not None:
            return self.mock.enabled
        return not self.providers


def _resolve_env_refs(value: Any, path: str, env: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(ENV_REF):
        name = value[len(ENV_REF) :]
        if name not in env:
            raise ConfigError(f"{path}: environment variable {name} is not set")
        return env[name]
    if isinstance(value, dict):
        return {k: _resolve_env_refs(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env_refs(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _apply_env(raw: dict[str, Any], env: dict[str, str]) -> None:
    providers = raw.setdefault("providers", {})
    if not isinstance(providers, dict):
        return
    for name, known in KNOWN_PROVIDERS.items():
        key = env.get(known["key_env"])
        url = env.get(known["url_env"])
        if key is None and url is None:
            continue
        entry = providers.setdefault(name, {})
        if isinstance(entry, dict):
            if key is not None:
                entry.setdefault("api_key", key)
            if url is not None:
                entry.setdefault("base_url", url)
    for name, fields in PROVIDER_ENV_FIELDS.items():
        entry = providers.get(name)
        if name == "gemini" and entry is None and "GOOGLE_API_KEY" in env:
            entry = providers.setdefault(name, {})
        if isinstance(entry, dict):
            for var, field_name in fields.items():
                if var in env:
                    entry.setdefault(field_name, env[var])
    if "DATABASE_URL" in env:
        raw["database_url"] = env["DATABASE_URL"]
    for var, key in (("TOLLWAY_MASTER_KEY", "master_key"), ("TOLLWAY_MASTER_KEY_PREVIOUS", "master_key_previous"),
                     ("REDIS_URL", "redis_url")):
        if env.get(var):
            raw[key] = env[var]
    if env.get("TOLLWAY_STRICT", "").lower() in ("1", "true", "yes"):
        raw["strict"] = True


def _format_validation(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Load and validate configuration; raise :class:`ConfigError` with file, key and reason."""
    env = dict(os.environ) if env is None else env
    source = "environment"
    raw: Any = {}
    file = Path(path) if path is not None else None
    if file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        file = Path(DEFAULT_CONFIG_FILE)
    if file is not None:
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from exc
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: invalid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: top level must be a mapping, got {type(raw).__name__}")
        try:
            raw = _resolve_env_refs(raw, "", env)
        except ConfigError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
    _apply_env(raw, env)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from exc


def config_json_schema() -> dict[str, Any]:
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tollway configuration"
    return schema
