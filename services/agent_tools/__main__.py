from services.agent_tools.server import create_server
from services.agent_tools.settings import AgentToolsSettings

if __name__ == "__main__":
    settings = AgentToolsSettings()  # type: ignore[call-arg]  # the key comes from the environment
    create_server(settings).run(transport=settings.transport)
