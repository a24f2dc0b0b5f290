"""What the figures were measured on: CPU, cores, kernel, and the versions of everything involved."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import litellm_setup


def cpu_model(cpuinfo: str) -> str:
    """The ``model name`` of the first CPU in the text of ``/proc/cpuinfo``."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(repo_root: Path, wrk_bin: str | None, nginx_bin: str | None) -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except FileNotFoundError:
        cpuinfo = ""
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(cpuinfo),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            "tollway": _package_version("tollway"),
            "tollway_commit": _output(["git", "-C", str(repo_root), "rev-parse", "--short", "HEAD"]),
            "litellm": litellm_setup.installed_version() or "not installed",
            "uvicorn": _package_version("uvicorn"),
            "uvloop": _package_version("uvloop"),
            "httptools": _package_version("httptools"),
            "aiohttp": _package_version("aiohttp"),
            "orjson": _package_version("orjson"),
            "nginx": _output([nginx_bin, "-v"]) if nginx_bin else "not installed",
            "wrk": _output([wrk_bin, "-v"]) if wrk_bin else "not installed",
        },
    }
