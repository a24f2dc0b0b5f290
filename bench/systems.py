"""The systems under test: how each one starts, is known ready, is addressed, and is measured (RSS).

* ``direct``: no proxy, the client talks to the upstream itself (the floor every added latency is against);
* ``bare``: :mod:`bench.bare_proxy`, the Python pass-through ceiling;
* ``tollway``: ``tollway serve`` with its default production settings, 1 worker, auth on (a virtual key
  scoped to a project, provisioned with the CLI);
* ``litellm``: LiteLLM proxy from its own venv (see :mod:`bench.litellm_setup`).

Servers are pinned alone on ``server_cpus`` (the load generator and upstream use the other core).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import litellm_setup
from bench.bodies import Endpoint
from bench.net import free_port, get_ok, wait_ready
from bench.processes import Managed, ProcessRegistry, group_rss_kib, tail

SYSTEM_NAMES = ("direct", "bare", "tollway", "litellm")
REPO_ROOT = Path(__file__).resolve().parents[1]

_MODELS: dict[str, dict[Endpoint, str]] = {
    # Chat door → OpenAI Chat upstream, Responses door → OpenAI Responses upstream: like for like with bare.
    "tollway": {"chat": "openai-chat/gpt-4o-mini", "responses": "gpt-4o-mini"},
}
_DEFAULT_MODEL = "gpt-4o-mini"
BASE_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
# tollway runs with auth on, as in production: the benchmark provisions an org, a team, a project and a
# virtual key scoped to that project (with the tollway CLI, in the run's scratch database) and sends it.
_TENANCY_STEPS = (
    ("orgs", "create", "bench"),
    ("teams", "create", "--org", "bench", "platform"),
    ("projects", "create", "--team", "bench/platform", "app"),
)
_HEALTH = {"bare": "/health", "tollway": "/health/live", "litellm": litellm_setup.HEALTH_PATH}
_START_TIMEOUT_S = {"bare": 20.0, "tollway": 30.0, "litellm": 180.0}


def model_for(system: str, endpoint: Endpoint) -> str:
    """The ``model`` the requests to ``system`` carry on ``endpoint``."""
    return _MODELS.get(system, {}).get(endpoint, _DEFAULT_MODEL)


@dataclass(slots=True)
class System:
    name: str
    port: int
    managed: Managed | None
    headers: dict[str, str] = field(default_factory=lambda: dict(BASE_HEADERS))

    def rss_kib(self) -> int | None:
        """Resident memory of the server's process group, None for ``direct`` or a dead server."""
        if self.managed is None or self.managed.popen.poll() is not None:
            return None
        return group_rss_kib(self.managed.popen.pid)

    def alive(self) -> bool:
        return self.managed is None or self.managed.popen.poll() is None


def tollway_config_yaml(upstream_base: str) -> str:
    """tollway config pointing every provider at the benchmark upstream."""
    base = f"{upstream_base}/v1"
    return f"""providers:
  openai: {{api_key: sk-bench, base_url: "{base}"}}
  anthropic: {{api_key: sk-bench, base_url: "{base}"}}
  openai-chat: {{kind: openai_chat, api_key: sk-bench, base_url: "{base}"}}
"""


def provision_key(tollway_bin: Path, config: Path, workdir: Path) -> str:
    """Create the benchmark's tenancy (org/team/project) and a project key; the key, or raise
    RuntimeError naming the step that failed."""
    env = {"PYTHONPATH": str(REPO_ROOT)}
    steps: list[tuple[str, ...]] = [("db", "upgrade"), *_TENANCY_STEPS,
                                    ("keys", "create", "--project", "bench/app", "--name", "bench")]
    out = ""
    for step in steps:
        argv = [str(tollway_bin), *step[:2], "--config", str(config), *step[2:]]
        done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env}, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`tollway {' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-400:]}")
        out = done.stdout
    start = out.find("{")
    key = json.loads(out[start:]).get("key") if start >= 0 else None
    if not isinstance(key, str) or not key.startswith("tw_"):
        raise RuntimeError(f"`tollway keys create` printed no key: {out[-300:]!r}")
    return key


def _argv(name: str, port: int, upstream_base: str, workdir: Path) -> list[str] | str:
    """The command that starts ``name`` on ``port``, or why it cannot be started."""
    if name == "bare":
        return [sys.executable, "-m", "bench.bare_proxy", "--upstream", upstream_base, "--port", str(port)]
    if name == "tollway":
        tollway_bin = Path(sys.executable).parent / "tollway"
        if not tollway_bin.exists():
            return f"{tollway_bin} not found (run `uv sync`)"
        config = workdir / "tollway.yaml"
        config.write_text(tollway_config_yaml(upstream_base))
        serve = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        return [str(tollway_bin), *serve]
    if name == "litellm":
        config = workdir / "litellm.yaml"
        config.write_text(litellm_setup.config_yaml(upstream_base))
        return litellm_setup.command(config, port)
    return f"unknown system {name!r}"


def start(
    name: str, registry: ProcessRegistry, upstream_base: str, upstream_port: int, workdir: Path, cpus: str
) -> System | str:
    """Start system ``name`` and wait until it answers its health check. The System, or why it failed."""
    if name == "direct":
        return System(name="direct", port=upstream_port, managed=None)
    port = free_port()
    argv = _argv(name, port, upstream_base, workdir)
    if isinstance(argv, str):
        return f"{name} failed to start: {argv}"
    headers = dict(BASE_HEADERS)
    if name == "tollway":
        try:
            key = provision_key(Path(argv[0]), workdir / "tollway.yaml", workdir)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            return f"tollway failed to start: cannot provision its virtual key: {exc}"
        headers["authorization"] = f"Bearer {key}"
    env = litellm_setup.environment() if name == "litellm" else {"PYTHONPATH": str(REPO_ROOT)}
    unset = litellm_setup.UNSET if name == "litellm" else ()
    # The servers run in the run's scratch folder: whatever they write by default (tollway's SQLite store
    # and usage spool) starts empty each run and is removed with it, never lands in the repository.
    managed = registry.spawn(name, argv, cpus=cpus, env=env, unset=unset, cwd=workdir)
    why = wait_ready(get_ok(port, _HEALTH[name]), f"GET {_HEALTH[name]}", managed, _START_TIMEOUT_S[name])
    if why is not None:
        registry.stop(managed)
        return f"{name} failed to start: {why}\n--- last lines of {managed.log_path} ---\n{tail(managed.log_path)}"
    return System(name=name, port=port, managed=managed, headers=headers)
