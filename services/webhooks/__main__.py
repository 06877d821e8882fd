from services.common.runner import serve
from services.webhooks.service import build
from services.webhooks.settings import WebhooksSettings

if __name__ == "__main__":
    serve("webhooks", WebhooksSettings(), build)
