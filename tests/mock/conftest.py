from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tollway.mock import MockDefaults, create_app


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client for the mock app with default settings (one text delta per word, no delay)."""
    async with TestClient(TestServer(create_app(MockDefaults()))) as c:
        yield c
