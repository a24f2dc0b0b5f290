"""Fixtures for the limits tests: the shared Redis at 127.0.0.1:6379 (started by ``.ci/run``; every test
uses fresh random rule ids, so keys never collide and nothing is flushed), both backends, a private
``redis-server`` that a test may stop, and the database fixtures of tests/storage (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import free_port, running_mock
from tests.limits.cluster import Cluster, fresh_database
from tests.storage.conftest import database_url, migrated_url  # noqa: F401  (fixtures)
from tollway.limits.backend import Backend
from tollway.limits.memory_backend import MemoryBackend
from tollway.limits.redis_backend import RedisBackend

REDIS_URL = os.environ.get("TOLLWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def ping(url: str) -> bool:
    """A synchronous PING (usable inside or outside an event loop)."""
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not ping(REDIS_URL):
        if os.environ.get("CI"):
            pytest.fail(f"Redis unreachable at {REDIS_URL}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    b: Backend = MemoryBackend() if request.param == "memory" else RedisBackend(request.getfixturevalue("redis_url"))
    yield b
    await b.close()


class PrivateRedis:
    """A redis-server of our own on a free port (no persistence), which a test may stop and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while not ping(self.url):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with running_mock() as url:
        yield url


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database (SQLite when PostgreSQL is unreachable), dropped afterwards."""
    async with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def cluster_factory() -> Iterator[list[Cluster]]:
    """Clusters appended here are stopped at teardown."""
    clusters: list[Cluster] = []
    yield clusters
    for c in clusters:
        c.stop()
