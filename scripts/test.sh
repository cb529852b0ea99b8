#!/usr/bin/env bash
# The test suite: lint, then pytest (tiny data, 1-epoch runs, real `dvc repro` in temp repos).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
ruff check src stages tests bench scripts
ruff format --check src stages tests bench scripts
python -m pytest -q "$@"
