#!/usr/bin/env bash
# The whole study with the default params: the DVC pipeline (download, train, evaluate, compare).
# Offline: MNIST_MIRROR=/path/to/folder/with/the/four/mnist/gz/files bash scripts/study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
dvc repro "$@"
