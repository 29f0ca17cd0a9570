"""Build the configured providers, one per `providers:` entry."""

from __future__ import annotations

from gateway.config import ProviderConfig
from gateway.providers.base import Provider
from gateway.providers.litellm_sdk import LiteLLMProvider
from gateway.providers.openai_http import OpenAIHTTPProvider


def build_provider(name: str, config: ProviderConfig) -> Provider:
    if config.kind == "openai":
        return OpenAIHTTPProvider(name, config)
    return LiteLLMProvider(name, config)
