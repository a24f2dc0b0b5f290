"""Make the external tools the harness drives (wrk, nginx) present, installing them from Debian's packages."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tool:
    binary: str
    package: str


WRK = Tool(binary="wrk", package="wrk")
NGINX = Tool(binary="nginx", package="nginx-light")
TASKSET = Tool(binary="taskset", package="util-linux")


def install_command(tools: list[Tool]) -> str:
    """The exact command that installs ``tools`` (what to tell the user when the harness cannot)."""
    packages = " ".join(tool.package for tool in tools)
    return f"apt-get update && apt-get install -y {packages}"


def find(tool: Tool) -> str | None:
    found = shutil.which(tool.binary)
    if found is None and tool.binary == "nginx":
        # Debian puts nginx in /usr/sbin, which is not on every PATH.
        found = shutil.which("nginx", path="/usr/sbin:/sbin")
    return found


def ensure(tools: list[Tool], log: list[str]) -> str | None:
    """Install whichever of ``tools`` is missing. None when all are present, else the reason and the command."""
    missing = [tool for tool in tools if find(tool) is None]
    if not missing:
        return None
    command = install_command(missing)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"missing {', '.join(t.binary for t in missing)}; install with: {command}"
    packages = [tool.package for tool in missing]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.append(f"installing {' '.join(packages)} with apt-get")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        log.append("apt-get install failed, running apt-get update first")
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    still = [tool for tool in missing if find(tool) is None]
    if still:
        detail = result.stderr.strip().splitlines()[-1:] or [""]
        return (
            f"could not install {', '.join(t.package for t in still)} ({detail[0]}); "
            f"install with: {install_command(still)}"
        )
    return None
