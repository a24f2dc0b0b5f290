"""The upstreams the systems under test talk to.

One nginx (1 worker, access log off, a non-daemon child pinned with the load generator) is the single
upstream base URL every system is configured with. It has three modes:

* ``json``: the fixed non-streaming bodies of OpenAI Chat, OpenAI Responses and Anthropic Messages;
* ``sse``: the fixed streaming (SSE) bodies, all chunks at once (zero delay);
* ``mock``: a pass-through (``proxy_buffering off``) to tollway's deterministic mock, which streams
  ``chunks`` events ``delay_ms`` apart; used by the streaming probe for time-to-first-byte and per-chunk delay.

``json``/``sse`` switch by atomically swapping a symlink (no reload, connections stay up); ``mock`` needs
a config reload (SIGHUP). Each mode answers ``GET /__bench_mode`` with its name, so a switch is confirmed.
A POST to a static file is a 405 in nginx; ``error_page 405 =200`` turns it into a GET of the body file.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench import bodies
from bench.net import LOCALHOST, free_port, get_ok, http_get, http_post, wait_ready
from bench.processes import Managed, ProcessRegistry, tail

Mode = Literal["json", "sse", "mock"]

_ROUTES = {
    bodies.PATHS["chat"]: "chat",
    bodies.PATHS["responses"]: "responses",
    bodies.ANTHROPIC_PATH: "messages",
}


def _nginx_head(root: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  server_tokens off;
  etag off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {root}/tmp_client_body;
  proxy_temp_path {root}/tmp_proxy;
  fastcgi_temp_path {root}/tmp_fastcgi;
  uwsgi_temp_path {root}/tmp_uwsgi;
  scgi_temp_path {root}/tmp_scgi;
  types {{ application/json json; text/event-stream sse; text/plain txt; }}
"""


def nginx_fixed_conf(root: Path, port: int) -> str:
    """nginx config serving the body files of ``<root>/www/current`` (a symlink to the json or sse set)."""
    routes = "".join(
        f"    location = {path} {{ error_page 405 =200 /current/{name}; return 405; }}\n"
        for path, name in _ROUTES.items()
    )
    return (
        _nginx_head(root)
        + f"""  server {{
    listen {LOCALHOST}:{port} backlog=4096;
    location = /health {{ default_type text/plain; return 200 'ok'; }}
    location = /__bench_mode {{ default_type text/plain; alias {root}/www/current/mode.txt; }}
{routes}    location /current/ {{ internal; root {root}/www; try_files $uri.json $uri.sse =500; }}
  }}
}}
"""
    )


def nginx_mock_conf(root: Path, port: int, mock_port: int, chunks: int, delay_ms: int) -> str:
    """nginx config passing everything through, unbuffered, to the mock on ``mock_port``."""
    return (
        _nginx_head(root)
        + f"""  upstream mock {{ server {LOCALHOST}:{mock_port}; keepalive 256; }}
  server {{
    listen {LOCALHOST}:{port} backlog=4096;
    location = /health {{ default_type text/plain; return 200 'ok'; }}
    location = /__bench_mode {{ default_type text/plain; return 200 'mock'; }}
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-mock-scenario "chunks={chunks},delay_ms={delay_ms}";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""
    )


@dataclass(slots=True)
class Upstream:
    """The running nginx (and, once started, the mock behind it)."""

    registry: ProcessRegistry
    nginx_bin: str
    chunks: int
    cpus: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tollway-bench-")))
    port: int = 0
    mode: Mode = "json"
    nginx: Managed | None = None
    mock: Managed | None = None
    mock_port: int = 0
    mock_error: str | None = None
    probe_chunks: int = 20
    probe_delay_ms: int = 5

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> str | None:
        """Write the body files and config, start nginx. None when up, else why not."""
        self.root.chmod(0o755)  # nginx workers run as another user when not root
        www = self.root / "www"
        for mode, files in bodies.upstream_files(self.chunks).items():
            folder = www / mode
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in files.items():
                (folder / name).write_bytes(content)
            (folder / "mode.txt").write_text(mode)
        self._point_current("json")
        self.port = free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(nginx_fixed_conf(self.root, self.port))
        argv = [self.nginx_bin, "-p", str(self.root), "-e", str(self.root / "error.log"), "-c", str(conf)]
        self.nginx = self.registry.spawn("nginx", argv, cpus=self.cpus)
        why = wait_ready(get_ok(self.port, "/health"), "GET /health", self.nginx, timeout_s=10)
        if why is not None:
            return f"nginx failed to start: {why}\n{tail(self.root / 'error.log')}"
        return None

    def set_mode(self, mode: Mode) -> str | None:
        """Switch what nginx serves; confirmed through ``/__bench_mode``. None when done, else why not."""
        if mode == self.mode:
            return None
        if mode == "mock" and self.mock is None:
            return self.mock_error or "mock not started"
        conf = self.root / "nginx.conf"
        if mode == "mock":
            conf.write_text(
                nginx_mock_conf(self.root, self.port, self.mock_port, self.probe_chunks, self.probe_delay_ms)
            )
            self._reload()
        else:
            self._point_current(mode)
            if self.mode == "mock":
                conf.write_text(nginx_fixed_conf(self.root, self.port))
                self._reload()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                status, body = http_get(self.port, "/__bench_mode")
            except OSError:
                status, body = 0, b""
            if status == 200 and body.decode().strip() == mode:
                self.mode = mode
                return None
            time.sleep(0.05)
        return f"nginx did not switch to mode {mode}"

    def start_mock(self, chunks: int, delay_ms: int) -> str | None:
        """Start tollway's mock (``tollway mock``) on core ``cpus``. None when up, else why not."""
        self.probe_chunks, self.probe_delay_ms = chunks, delay_ms
        tollway_bin = Path(sys.executable).parent / "tollway"
        if not tollway_bin.exists():
            self.mock_error = f"mock failed to start: {tollway_bin} not found"
            return self.mock_error
        self.mock_port = free_port()
        argv = [str(tollway_bin), "mock", "--port", str(self.mock_port)]
        argv += ["--chunks", str(chunks), "--chunk-delay-ms", str(delay_ms)]
        mock = self.registry.spawn("mock", argv, cpus=self.cpus, cwd=self.root)
        body = bodies.request_body("chat", "gpt-4o-mini", stream=False)
        headers = {"content-type": "application/json"}

        def probe() -> int:
            return http_post(self.mock_port, bodies.PATHS["chat"], body, headers, timeout_s=2)[0]

        why = wait_ready(probe, "POST /v1/chat/completions", mock, timeout_s=30)
        if why is not None:
            self.registry.stop(mock)
            self.mock_error = f"mock failed to start: {why}\n{tail(mock.log_path)}"
            return self.mock_error
        self.mock = mock
        return None

    def _point_current(self, mode: Literal["json", "sse"]) -> None:
        www = self.root / "www"
        tmp_link = www / "current.new"
        if tmp_link.is_symlink():
            tmp_link.unlink()
        tmp_link.symlink_to(mode)
        tmp_link.replace(www / "current")

    def _reload(self) -> None:
        if self.nginx is not None:
            os.kill(self.nginx.popen.pid, signal.SIGHUP)
