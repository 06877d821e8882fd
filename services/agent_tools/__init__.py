"""Tools for LLM agents: an MCP server over the search API, scoped by its API key like any client."""
