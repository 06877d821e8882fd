# One image for every clipstream service (`python -m services.<name>`) and for Triton
# (`python -m services.cli triton serve`: the nvidia-pytriton wheel's tritonserver, unpacked at build
# time, serving triton_models/ with torch on the GPU when the pod has one). The Helm chart sets the args.
# PyAV's wheels bundle FFmpeg, so the image needs no system codecs.
# BASE: a Debian bookworm image with Python 3.11 at /usr/local/bin/python; python:3.11-slim by default,
# or the one scripts/build-image.sh makes with debootstrap where no registry is reachable.
# Layers from the least to the most often changed: the dependencies (pyproject.toml: ~7.5 GB, torch and
# its CUDA libraries) are built and copied in layers a code change leaves alone; the code is a small layer.
ARG BASE=python:3.11-slim

FROM ${BASE} AS deps
# the wheels come from PyPI through uv; scripts/build-image.sh lends the host's uv cache at /root/.cache/uv
ENV UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=copy
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -q uv
COPY pyproject.toml /src/
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python --no-progress -r /src/pyproject.toml --extra batch

FROM ${BASE}
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONUNBUFFERED=1 HOME=/tmp CLIPSTREAM_HOME=/var/lib/clipstream \
    CLIPSTREAM_STACK_CACHE_DIR=/opt/clipstream \
    CLIPSTREAM_OCR_ENCODER_DIR=/opt/clipstream/text-encoder CLIPSTREAM_SEARCH_TEXT_ENCODER_DIR=/opt/clipstream/text-encoder
RUN apt-get update && apt-get install -y --no-install-recommends libstdc++6 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home clipstream
WORKDIR /app
COPY schemas ./schemas
COPY triton_models ./triton_models
# the code runs from /app (`python -m services.<name>`: the working directory is on the path)
COPY services ./services
RUN python -m services.cli triton prepare \
 && python -c "from pathlib import Path; from services.text.sentences import prepare; prepare(Path('/opt/clipstream/text-encoder'))" \
 && python -m compileall -q /app/services
USER 10001
ENTRYPOINT ["python"]
CMD ["-m", "services.search"]
