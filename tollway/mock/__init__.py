"""The deterministic mock upstream provider (OpenAI Responses, OpenAI Chat, Anthropic Messages)."""

from tollway.mock.app import bound_port, create_app, start
from tollway.mock.scenario import MockDefaults

__all__ = ["MockDefaults", "bound_port", "create_app", "start"]
