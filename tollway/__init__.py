"""tollway: an LLM gateway speaking Open Responses and OpenAI Chat Completions."""

__version__ = "0.1.0"
