#!/usr/bin/env bash
# The GPU check: one command of at most 8 minutes on a bare GPU machine with torch preinstalled
# (e.g. an H200 image with Python 3.12, torch 2.11, numpy, pandas, scipy, scikit-learn,
# matplotlib, torchvision, networkx, pyyaml, pytest, hypothesis; no pydantic, no DVC, no network).
#
#   1. installs what training and the tests import and the machine lacks (pydantic and its
#      dependencies) from wheels brought along in .gpu-wheels/, and the project (--no-deps -e .);
#   2. runs the CUDA tests (tests/test_cuda.py): a few training steps of every model family on
#      CUDA match the CPU, a checkpoint written on CUDA resumes on the CPU, train.device auto
#      picks cuda;
#   3. measures training images/s of every family on the GPU (bench/speed.py --device cuda);
#   4. times one distorted dataset's whole study (every train stage of rot, 1 epoch per run)
#      through the stage scripts, MNIST read from .gpu-wheels/mnist (bench/study_epoch.py),
#      and extrapolates to its 10 epochs.
# Everything it prints goes to $OUT/gpu_check.log too (OUT defaults to a temporary folder).
# STUDY_VARIANTS="cnn stn-conv" limits part 4 to those variants (a smoke test on a CPU).
#
# Prepare .gpu-wheels/ here once (ignored by git; the versions are requirements.lock's; the
# machine's Python is 3.12):
#   echo /.gpu-wheels/ >> "$(git rev-parse --git-common-dir)/info/exclude"
#   mkdir -p .gpu-wheels/mnist && cp ../shared/data/mnist/*.gz .gpu-wheels/mnist/
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .gpu-wheels pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
#     typing-inspection==0.4.5 typing-extensions==4.16.0
# and run it with the device tool: command `bash bench/gpu_check.sh`, carry [".gpu-wheels"],
# timeout_s 540. The parts have their own time limits, so that the whole stays under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
START=$SECONDS
status=0
part() { echo; echo "== $* (at $((SECONDS - START)) s)"; }
check() { "$@" && return 0; local rc=$?; echo "FAILED ($rc): $*"; status=1; return $rc; }

part "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

part "install what is missing"
export PYTHONPATH=$PWD/src  # this checkout's code, whatever else is installed
if ! python3 -c "import pydantic" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu-wheels/*.whl || { echo "FAILED: wheels from .gpu-wheels"; exit 1; }
    export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
if ! python3 -c "import stn" 2>/dev/null; then  # the project: editable, its dependencies left alone
    python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || echo "editable install failed"
fi
python3 -c "import pydantic, stn.training.loop; print('pydantic', pydantic.VERSION, '; stn from', *stn.__path__)" \
    || { echo "FAILED: the project does not import"; exit 1; }

part "CUDA tests"
check timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py

part "training images/s per family on the GPU"
check timeout 150 python3 bench/speed.py --device cuda --rounds 2

part "one distorted dataset's study, 1 epoch per run, through the stage scripts"
export MNIST_MIRROR=$PWD/.gpu-wheels/mnist
if check timeout 60 python3 stages/download.py && check timeout 60 python3 stages/prepare.py rot; then
    left=$((460 - (SECONDS - START)))  # whatever is left of the 8 minutes, less a margin
    echo "time left for the study: $left s"
    if ((left > 30)); then
        check timeout "$left" python3 bench/study_epoch.py rot --epochs 1 ${STUDY_VARIANTS:+--variants $STUDY_VARIANTS}
    fi
fi

part "done: exit $status"
exit $status
