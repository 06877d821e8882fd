from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentToolsSettings(BaseSettings):
    """The MCP server is a client of the search API: the key decides the tenant its tools see."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_AGENT_TOOLS_", extra="ignore")

    search_url: str = Field(default="http://127.0.0.1:8080", description="the search API the tools call")
    api_key: SecretStr = Field(description="a search API key: the tenant whose catalogue the tools see")
    transport: Literal["stdio", "streamable-http"] = "stdio"
    host: str = "127.0.0.1"  # streamable-http only
    port: int = 8095
    timeout_s: float = Field(default=60.0, gt=0)
