from services.common.runner import serve
from services.decoder.service import build
from services.decoder.settings import DecoderSettings

if __name__ == "__main__":
    serve("decoder", DecoderSettings(), build)
