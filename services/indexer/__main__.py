from services.common.runner import serve
from services.indexer.service import build
from services.indexer.settings import IndexerSettings

if __name__ == "__main__":
    serve("indexer", IndexerSettings(), build)
