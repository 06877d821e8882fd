from services.common.runner import serve
from services.embedder.service import build
from services.embedder.settings import EmbedderSettings

if __name__ == "__main__":
    serve("embedder", EmbedderSettings(), build)
