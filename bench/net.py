"""Local ports and readiness: pick free 127.0.0.1 ports, wait until a started server answers."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable

from bench.processes import Managed

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """GET ``http://127.0.0.1:<port><path>``: (status, body)."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes, headers: dict[str, str], timeout_s: float = 30.0) -> tuple[int, bytes]:
    """POST ``body`` to ``http://127.0.0.1:<port><path>``: (status, full body)."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(probe: Callable[[], int], what: str, managed: Managed | None, timeout_s: float) -> str | None:
    """Call ``probe`` (returns an HTTP status) until it gives 200. None when ready, else why not."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if managed is not None:
            code = managed.popen.poll()
            if code is not None:
                return f"exited with code {code} before answering {what}"
        try:
            status = probe()
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                return None
            last = f"HTTP {status}"
        time.sleep(0.1)
    return f"not ready after {timeout_s:.0f}s on {what} (last: {last})"


def get_ok(port: int, path: str) -> Callable[[], int]:
    """A readiness probe: the status of GET ``path``."""
    return lambda: http_get(port, path, timeout_s=1.0)[0]
