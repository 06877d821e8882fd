# One image for every clipstream service (`python -m services.<name>`) and for Triton
# (`python -m services.cli triton serve`: the nvidia-pytriton wheel's tritonserver, unpacked at build
# time, serving triton_models/ with torch on the GPU when the pod has one). The Helm chart sets the args.
# PyAV's wheels bundle FFmpeg, so the image needs no system codecs.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install --no-cache-dir --prefix=/install ".[batch]"

FROM python:3.11-slim
COPY --from=build /install /usr/local
WORKDIR /app
COPY schemas ./schemas
COPY triton_models ./triton_models
ENV PYTHONUNBUFFERED=1 HOME=/tmp CLIPSTREAM_HOME=/var/lib/clipstream \
    CLIPSTREAM_STACK_CACHE_DIR=/opt/clipstream \
    CLIPSTREAM_OCR_ENCODER_DIR=/opt/clipstream/text-encoder CLIPSTREAM_SEARCH_TEXT_ENCODER_DIR=/opt/clipstream/text-encoder
RUN apt-get update && apt-get install -y --no-install-recommends libstdc++6 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && python -m services.cli triton prepare \
 && python -c "from pathlib import Path; from services.text.sentences import prepare; prepare(Path('/opt/clipstream/text-encoder'))" \
 && useradd --uid 10001 --user-group --no-create-home clipstream
USER 10001
ENTRYPOINT ["python"]
CMD ["-m", "services.search"]
