from __future__ import annotations

from pathlib import Path

from bench.upstream import nginx_fixed_conf, nginx_mock_conf


def test_fixed_conf_serves_every_door_from_the_current_body_set() -> None:
    conf = nginx_fixed_conf(Path("/tmp/b"), 8081)
    assert "daemon off;" in conf
    assert "worker_processes 1;" in conf
    assert "access_log off;" in conf
    assert "listen 127.0.0.1:8081" in conf
    for path, name in (("/v1/chat/completions", "chat"), ("/v1/responses", "responses"), ("/v1/messages", "messages")):
        assert f"location = {path} {{ error_page 405 =200 /current/{name}; return 405; }}" in conf
    assert "try_files $uri.json $uri.sse =500;" in conf
    assert "alias /tmp/b/www/current/mode.txt;" in conf
    assert conf.count("{") == conf.count("}")


def test_mock_conf_passes_through_unbuffered_with_the_scenario_header() -> None:
    conf = nginx_mock_conf(Path("/tmp/b"), 8081, 9000, chunks=50, delay_ms=5)
    assert "server 127.0.0.1:9000;" in conf
    assert "proxy_buffering off;" in conf
    assert 'proxy_set_header x-mock-scenario "chunks=50,delay_ms=5";' in conf
    assert "return 200 'mock';" in conf
    assert conf.count("{") == conf.count("}")
