from __future__ import annotations

from pathlib import Path

import pytest

from tollway.cli import main
from tollway.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_env_only_registers_providers() -> None:
    s = load_settings(None, env={"OPENAI_API_KEY": "sk", "ANTHROPIC_BASE_URL": "http://a/v1"})
    assert s.providers["openai"].api_key == "sk"
    assert s.providers["anthropic"].base_url == "http://a/v1"
    assert not s.mock_enabled


def test_no_providers_enables_mock() -> None:
    assert load_settings(None, env={}).mock_enabled


def test_env_refs_and_aliases(tmp_path: Path) -> None:
    p = write(tmp_path, "providers:\n  openai: {api_key: os.environ/MY_KEY}\nmodels:\n  fast: openai/gpt-4o-mini\n"
                        "prices:\n  openai/x: {input: '0.5', output: 2}\n")
    s = load_settings(p, env={"MY_KEY": "secret"})
    assert s.providers["openai"].api_key == "secret"
    assert str(s.prices["openai/x"].input) == "0.5"


@pytest.mark.parametrize(("text", "needle"), [
    ("providers:\n  openai: {api_key: os.environ/NOPE}\n", "providers.openai.api_key: environment variable NOPE"),
    ("timeouts: {connect: -1}\n", "timeouts.connect"),
    ("models:\n  fast: nothing\n", "models"),
    ("bogus: 1\n", "bogus"),
    ("providers: [1\n", "invalid YAML"),
    ("- a\n", "top level must be a mapping"),
    ("prices:\n  a/b: {input: -1}\n", "prices.a/b.input"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env={})
    assert str(p) in str(exc.value) and needle in str(exc.value)


def test_cli_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "strict: true\n")
    assert main(["config", "check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: -5\n")
    with pytest.raises(SystemExit) as exc:
        main(["config", "check", str(bad)])
    assert exc.value.code == 2
    assert "port" in capsys.readouterr().err


def test_cli_config_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "providers" in schema["properties"] and schema["$schema"].endswith("2020-12/schema")


def test_cli_help_for_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["serve", "--help"], ["mock", "--help"], ["config", "check", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out
