from __future__ import annotations

from pathlib import Path

import yaml

from bench.litellm_setup import LITELLM_REQUIREMENT, UNSET, command, config_yaml, environment


def test_config_maps_the_model_to_the_upstream_without_spend_logs() -> None:
    config = yaml.safe_load(config_yaml("http://127.0.0.1:8081"))
    (entry,) = config["model_list"]
    assert entry["model_name"] == "gpt-4o-mini"
    assert entry["litellm_params"]["model"] == "openai/gpt-4o-mini"
    assert entry["litellm_params"]["api_base"] == "http://127.0.0.1:8081/v1"
    assert config["general_settings"]["disable_spend_logs"] is True
    assert "database_url" not in config["general_settings"]


def test_command_runs_one_worker_and_no_database() -> None:
    argv = command(Path("/tmp/c.yaml"), 4000)
    assert argv[argv.index("--num_workers") + 1] == "1"
    assert argv[argv.index("--port") + 1] == "4000"
    assert "DATABASE_URL" in UNSET
    assert environment()["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert LITELLM_REQUIREMENT == "litellm[proxy]==1.100.5"
