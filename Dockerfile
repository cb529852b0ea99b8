# pytorch-stn: `docker build -t pytorch-stn .`
#   docker run -v "$(pwd):/app" pytorch-stn                              # the whole study (dvc repro)
#   docker run -v "$(pwd):/app" pytorch-stn --layer=coordconv --epochs=50 # one model, as the original study
# Offline machines: add -e MNIST_MIRROR=/app/<folder with the four MNIST .gz files>.
FROM python:3.11.10-slim-bookworm

# PYTHONPATH: the mounted project's own src/ wins over the installed copy, so the code DVC
# tracks as stage deps is the code that runs.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    PYTHONPATH=/app/src

# git: DVC keeps its pipeline state beside a git repository (the mounted project).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /opt/pytorch-stn
# CPU wheels keep the image lean (no CUDA libraries); the versions are the project's pins.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

WORKDIR /app
ENTRYPOINT ["docker-entrypoint.sh"]
