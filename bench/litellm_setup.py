"""LiteLLM proxy as a system under test: its own virtualenv, its config, its command line.

LiteLLM is installed into ``bench/.venv-litellm`` (``uv venv`` + ``uv pip install 'litellm[proxy]==1.100.5'``
constrained by ``bench/litellm-constraints.txt``, the resolved tree, so reruns measure the same code).
Newer LiteLLM releases do not install here because of a certifi pin. It runs with 1 worker, no database,
``disable_spend_logs``, no master key, telemetry off and the bundled model-cost map (no network at start).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

LITELLM_REQUIREMENT = "litellm[proxy]==1.100.5"
BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-litellm"
CONSTRAINTS = BENCH_DIR / "litellm-constraints.txt"
HEALTH_PATH = "/health/liveliness"
MODEL = "gpt-4o-mini"
INSTALL_HINT = f"uv venv --python 3.11 {VENV} && uv pip install --python {VENV}/bin/python '{LITELLM_REQUIREMENT}'"


def litellm_bin() -> Path:
    return VENV / "bin" / "litellm"


def installed_version() -> str | None:
    """The LiteLLM version in the bench venv, or None when it is not installed."""
    python = VENV / "bin" / "python"
    if not python.exists() or not litellm_bin().exists():
        return None
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def ensure_installed(log: list[str]) -> str | None:
    """Create the venv and install LiteLLM if needed. None when ready, else why not (with the command)."""
    wanted = LITELLM_REQUIREMENT.rsplit("==", 1)[1]
    if installed_version() == wanted:
        return None
    uv = shutil.which("uv")
    if uv is None:
        return f"uv not found; install LiteLLM with: {INSTALL_HINT}"
    log.append(f"installing {LITELLM_REQUIREMENT} into {VENV} (may take a few minutes)")
    steps = [[uv, "venv", "--python", "3.11", str(VENV)]]
    install = [uv, "pip", "install", "--python", str(VENV / "bin" / "python"), LITELLM_REQUIREMENT]
    if CONSTRAINTS.exists():
        install += ["-c", str(CONSTRAINTS)]
    steps.append(install)
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = "\n".join(result.stderr.strip().splitlines()[-8:])
            return f"LiteLLM install failed at `{' '.join(step)}`:\n{detail}"
    if installed_version() != wanted:
        return f"LiteLLM not importable after install; try: {INSTALL_HINT}"
    return None


def config_yaml(upstream_base: str) -> str:
    """LiteLLM proxy config: gpt-4o-mini → openai/gpt-4o-mini at the benchmark upstream, no DB, no spend logs."""
    return f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {upstream_base}/v1
      api_key: sk-bench
litellm_settings:
  telemetry: false
  set_verbose: false
  request_timeout: 60
general_settings:
  disable_spend_logs: true
"""


def environment() -> dict[str, str]:
    """Variables added to the proxy's environment: bundled cost map, quiet logs, no telemetry."""
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
    }


# Variables that would make LiteLLM use a database, a master key or a remote config.
UNSET = ("DATABASE_URL", "LITELLM_MASTER_KEY", "LITELLM_CONFIG_BUCKET_NAME", "REDIS_HOST", "REDIS_URL")


def command(config_path: Path, port: int) -> list[str]:
    return [
        str(litellm_bin()),
        "--config",
        str(config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
