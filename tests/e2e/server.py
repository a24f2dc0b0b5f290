"""Runs the real gateway (uvicorn + the ASGI app) and the mock upstream in a background thread with
its own event loop, so tests talk to it over real HTTP with any client (aiohttp, the openai SDK)."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tollway.app import create_app
from tollway.mock.app import MockDefaults, bound_port
from tollway.mock.app import start as start_mock
from tollway.settings import Settings
from tollway.storage.migrate import upgrade


def free_port() -> int:
    """A free port for a server started in another process. Picked below the kernel's ephemeral range
    (32768+), so the many client connections a test run opens cannot take it between the pick and the
    server's bind."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


class _Loop(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def running_mock(defaults: MockDefaults | None = None) -> Iterator[str]:
    """Yields the mock's base URL (…/v1)."""
    t = _Loop()
    t.start()
    runner = t.call(start_mock("127.0.0.1", 0, defaults or MockDefaults()))
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}/v1"
    finally:
        t.call(runner.cleanup())
        t.loop.call_soon_threadsafe(t.loop.stop)


@contextmanager
def running_gateway(settings: Settings) -> Iterator[str]:
    """Yields the gateway's base URL (http://127.0.0.1:port)."""
    migrate = threading.Thread(target=upgrade, args=(settings.database_url,))
    migrate.start()  # alembic runs its own event loop; keep it off any loop the caller is running
    migrate.join(60)
    # bind the listening socket here and hand it to uvicorn: no window in which another process can take a
    # port picked in advance
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), loop="asyncio", http="httptools", lifespan="on", log_config=None,
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
