from __future__ import annotations

import pytest

from bench.load import lua_script, parse_wrk_output

# The shape wrk 4.1's done() hook prints with bench/load.py's script (values from a real run).
WRK_STDOUT = """Running 2s test @ http://127.0.0.1:49893/v1/chat/completions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    2.11ms  31.90ms   90.12%
    Req/Sec     5.01k   312.40     5.40k    75.00%
  10020 requests in 2.00s, 9.91MB read
Requests/sec:   5004.12
Transfer/sec:      4.95MB
WRK_JSON {"requests":10020,"duration_us":2002350,"bytes":10391112,"errors":{"connect":0,"read":1,"write":0,\
"status":3,"timeout":2},"latency_us":{"min":812,"mean":3210.4,"stdev":2110.7,"max":31904,"p50":2874,\
"p90":4630,"p99":11870,"p999":25001}}
"""


def test_parse_wrk_output_reads_the_json_line() -> None:
    result = parse_wrk_output(WRK_STDOUT)
    assert result.requests == 10020
    assert result.duration_s == pytest.approx(2.00235)
    assert result.rps == pytest.approx(10020 / 2.00235)
    assert result.p50_ms == pytest.approx(2.874)
    assert result.p90_ms == pytest.approx(4.630)
    assert result.p99_ms == pytest.approx(11.870)
    assert result.p999_ms == pytest.approx(25.001)
    assert result.mean_ms == pytest.approx(3.2104)
    assert result.max_ms == pytest.approx(31.904)
    assert result.errors == 6
    assert result.status_errors == 3
    assert result.timeouts == 2


def test_parse_wrk_output_without_json_line_fails() -> None:
    with pytest.raises(ValueError, match="no WRK_JSON"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_parse_wrk_output_zero_duration_gives_zero_rps() -> None:
    line = WRK_STDOUT.splitlines()[-1].replace('"duration_us":2002350', '"duration_us":0')
    assert parse_wrk_output(line).rps == 0.0


def test_lua_script_posts_the_body_and_reports_percentiles() -> None:
    script = lua_script(b'{"model":"m","stream":true}', {"content-type": "application/json", "x-q": 'a"b'})
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = [==[{"model":"m","stream":true}]==]' in script
    assert 'wrk.headers["content-type"] = "application/json"' in script
    assert 'wrk.headers["x-q"] = "a\\"b"' in script
    assert "done = function(summary, latency, requests)" in script
    for percentile in ("percentile(50)", "percentile(90)", "percentile(99)", "percentile(99.9)"):
        assert percentile in script
    assert "WRK_JSON " in script


def test_lua_script_rejects_a_body_that_would_end_the_long_string() -> None:
    with pytest.raises(ValueError, match="terminator"):
        lua_script(b'{"x":"]==]"}', {})
