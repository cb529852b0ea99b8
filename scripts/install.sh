#!/usr/bin/env bash
# The project's virtual environment (.venv), installed from the lock files, in three steps:
#   1. requirements.lock: every dependency but torch, exact versions, hash-checked;
#   2. requirements-torch.txt: torch and torchvision by version, from TORCH_INDEX (no hash: the
#      wheel differs per build; the locked packages are held as constraints);
#   3. the package itself (editable, no dependency resolution), then `pip check`.
# TORCH_INDEX: the CPU build's index by default. Another, e.g. https://pypi.org/simple (whose Linux
#   torch is the CUDA build), is used alone: no configured index can slip in another build.
#   Empty: pip's own configuration (pip.conf; PyPI if none).
# VENV: where (default .venv; the Dockerfile: /opt/venv). --deps-only: steps 1-2 (a Docker layer).
# A rerun is instant while the lock files and pyproject.toml are unchanged (stamps in the venv);
# to switch torch builds, remove the venv first. Refresh the locks: python3.11 scripts/lock.py
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_INDEX=${TORCH_INDEX-https://download.pytorch.org/whl/cpu}

deps_only=false
if [ "${1:-}" = --deps-only ]; then deps_only=true; fi
stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }
deps=$(stamp requirements.lock requirements-torch.txt)
if $deps_only; then
    [ "$(cat "$VENV/.stamp-deps" 2>/dev/null)" = "$deps" ] && exit 0
else
    project=$(stamp requirements.lock requirements-torch.txt pyproject.toml)
    [ "$(cat "$VENV/.stamp-project" 2>/dev/null)" = "$project" ] && exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || { echo "error: $VENV is not Python 3.11, the lock's Python; remove it or set PYTHON" >&2; exit 1; }
pip() { "$VENV/bin/python" -m pip --quiet --disable-pip-version-check "$@"; }
rm -f "$VENV/.stamp-project"

if [ "$(cat "$VENV/.stamp-deps" 2>/dev/null)" != "$deps" ]; then
    rm -f "$VENV/.stamp-deps"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # pip and setuptools first, so that the lock's sdists build with the locked setuptools.
    awk '/^[a-z]/ { keep = /^(pip|setuptools)==/ } keep' requirements.lock >"$tmp/bootstrap.txt"
    pip install --require-hashes -r "$tmp/bootstrap.txt"
    pip install --require-hashes --no-build-isolation -r requirements.lock
    # The locked versions as constraints, without hashes (which would demand one for torch too).
    sed -n 's/^\([A-Za-z0-9][^ ]*==[^ ]*\).*/\1/p' requirements.lock >"$tmp/constraints.txt"
    if [ -n "$TORCH_INDEX" ]; then
        env -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null \
            "$VENV/bin/python" -m pip --quiet --disable-pip-version-check install \
            --index-url "$TORCH_INDEX" -r requirements-torch.txt -c "$tmp/constraints.txt" \
            || { echo "error: no torch on TORCH_INDEX=$TORCH_INDEX (empty: pip's own index)" >&2; exit 1; }
    else
        pip install -r requirements-torch.txt -c "$tmp/constraints.txt"
    fi
    echo "$deps" >"$VENV/.stamp-deps"
fi
if $deps_only; then
    exit 0
fi

# setuptools (the build backend) is locked: no isolated build fetching an unpinned one.
pip install --no-deps --no-build-isolation -e .
pip check
echo "$project" >"$VENV/.stamp-project"
