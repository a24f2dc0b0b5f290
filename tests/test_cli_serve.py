"""`tollway serve` with the database unreachable at start-up: a clear message and exit 2, or spool mode
when the config allows it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.e2e.server import free_port

DEAD_DB = "postgresql://postgres:secret-pw@127.0.0.1:9/test"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["DATABASE_URL"] = DEAD_DB
    return env


def test_unreachable_database_exits_with_a_clear_message(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tollway.cli", "serve", "--port", str(free_port())],
                          env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unreachable at start-up" in proc.stderr and "start_without_database" in proc.stderr
    assert "secret-pw" not in proc.stderr and "Traceback" not in proc.stderr


def test_spool_mode_serves_and_says_so(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"start_without_database: true\nledger_spool_path: {tmp_path}/spool.db\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tollway.cli", "serve", "--config", str(config), "--port",
                             str(port)], env=_env(), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                    assert r.status == 200
                    assert b'"degraded"' in r.read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "gateway did not come up"
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "serving anyway" in err
