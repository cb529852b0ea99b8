#!/usr/bin/env bash
# The test suite: lint, then pytest (tiny data, 1-epoch runs, real `dvc repro` in temp repos).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
# tests/test_plots_offline.py needs a headless Chromium: install it on a fresh machine when root, else hint.
if ! python scripts/chromium.py >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
            || echo "warning: could not install chromium; tests/test_plots_offline.py will skip (fail if CI=true)" >&2
    else
        echo "hint: install Chromium (sudo apt-get install chromium) to run tests/test_plots_offline.py" >&2
    fi
fi
ruff check src stages tests bench scripts
ruff format --check src stages tests bench scripts
python -m pytest -q "$@"
