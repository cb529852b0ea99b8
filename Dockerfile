# pytorch-stn: `docker build -t pytorch-stn .`
#   docker run -v "$(pwd):/app" pytorch-stn                              # the whole study (dvc repro)
#   docker run -v "$(pwd):/app" pytorch-stn --layer=coordconv --epochs=50 # one model, as the original study
# Offline machines: add -e MNIST_MIRROR=/app/<folder with the four MNIST .gz files>.
# Build args: BASE_IMAGE (a Python 3.11 image), TORCH_INDEX (where torch comes from: by default the CPU
# build, no CUDA libraries; https://pypi.org/simple for the CUDA build).
ARG BASE_IMAGE=python:3.11.10-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# PYTHONPATH: the mounted project's own src/ wins over the installed copy, so the code DVC
# tracks as stage deps is the code that runs.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    PYTHONPATH=/app/src \
    VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# git: DVC keeps its pipeline state beside a git repository (the mounted project).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

# The same install as scripts/install.sh on a machine: requirements.lock (hash-checked), then
# torch and torchvision from TORCH_INDEX; the dependencies get a layer of their own.
WORKDIR /opt/pytorch-stn
COPY requirements.lock requirements-torch.txt ./
COPY scripts/install.sh scripts/
RUN bash scripts/install.sh --deps-only
COPY pyproject.toml README.md ./
COPY src ./src
RUN bash scripts/install.sh
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

WORKDIR /app
ENTRYPOINT ["docker-entrypoint.sh"]
