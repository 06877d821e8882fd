from services.common.runner import serve
from services.ocr.service import build
from services.ocr.settings import OcrSettings

if __name__ == "__main__":
    serve("ocr", OcrSettings(), build)
