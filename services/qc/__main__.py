from services.common.runner import serve
from services.qc.service import build
from services.qc.settings import QcSettings

if __name__ == "__main__":
    serve("qc", QcSettings(), build)
