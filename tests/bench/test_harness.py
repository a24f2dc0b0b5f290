from __future__ import annotations

from bench import bodies
from bench.harness import smoke_check


def test_smoke_check_accepts_real_answers() -> None:
    assert smoke_check(200, bodies.chat_json(3), "chat", False) is None
    assert smoke_check(200, bodies.chat_sse(3), "chat", True) is None
    assert smoke_check(200, bodies.responses_json(3), "responses", False) is None
    assert smoke_check(200, bodies.responses_sse(3), "responses", True) is None


def test_smoke_check_rejects_errors_and_wrong_shapes() -> None:
    assert "HTTP 502" in (smoke_check(502, b'{"error":{}}', "chat", False) or "")
    assert "lacks" in (smoke_check(200, b'{"error":{"message":"x"}}', "chat", False) or "")
    assert "lacks" in (smoke_check(200, bodies.chat_sse(3), "responses", True) or "")
    assert "not JSON" in (smoke_check(200, b'"choices" but truncated', "chat", False) or "")
