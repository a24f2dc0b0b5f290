"""The harness provisions tollway's tenancy and a project key with the real CLI (auth on, as in production)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import systems

TOLLWAY = Path(sys.executable).parent / "tollway"


def test_provision_key_creates_a_project_key(tmp_path: Path) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(systems.tollway_config_yaml("http://127.0.0.1:9"))
    key = systems.provision_key(TOLLWAY, config, tmp_path)
    assert key.startswith("tw_live_") and len(key) > 30
    assert (tmp_path / "tollway.db").exists()  # the run's scratch database, not the repository's


def test_provision_key_names_the_failing_step(tmp_path: Path) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text("providers: [not, a, mapping]\n")
    with pytest.raises(RuntimeError, match="tollway db upgrade"):
        systems.provision_key(TOLLWAY, config, tmp_path)
