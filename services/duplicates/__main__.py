from services.common.runner import serve
from services.duplicates.service import build
from services.duplicates.settings import DuplicatesSettings

if __name__ == "__main__":
    serve("duplicates", DuplicatesSettings(), build)
