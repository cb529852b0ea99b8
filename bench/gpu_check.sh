#!/usr/bin/env bash
# The GPU check: one command of at most 8 minutes on a bare GPU machine with torch preinstalled
# (e.g. an H200 image with Python 3.12, torch 2.11, numpy, pandas, scipy, scikit-learn,
# matplotlib, torchvision, networkx, pyyaml, pytest, hypothesis; no pydantic, no DVC, no network).
#
#   1. installs what training and the tests import and the machine lacks (pydantic and its
#      dependencies) from wheels brought along in .gpu-wheels/, and the project (--no-deps -e .);
#      starts preparing the datasets (MNIST read from .gpu-wheels/mnist) in the background;
#   2. runs the CUDA tests (tests/test_cuda.py): a few training steps of every model family on
#      CUDA match the CPU, a checkpoint written on CUDA resumes on the CPU, train.device auto
#      picks cuda;
#   3. once the data are ready (preparing them would slow the kernel launches), measures training
#      images/s of every family on the GPU in fp32 and under bf16 autocast (bench/speed.py
#      --device cuda --modes fp32 bf16);
#   4. times the tutorial-budget study of mnist (upright) and rot (distorted), every train stage,
#      1 epoch per run, JOBS (default 11) stages at a time, through the stage scripts
#      (bench/study_epoch.py; on a GPU each stage trains its seeds stacked as one model,
#      stn.training.stacked), and extrapolates to their full epochs;
#   5. with the time left, torch.compile of two families (bench/speed.py --modes compile).
# Everything it prints goes to $OUT/gpu_check.log too (OUT defaults to a temporary folder).
# STUDY=0 skips part 4 and the data. STUDY_VARIANTS="cnn stn-conv" limits part 4 to those
# variants, STUDY_DATASETS="rot" to those datasets (a smoke test on a CPU).
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
# timeout_s 560. The parts have their own time limits, so that the whole stays under 8 minutes.
# The check needs none of the tracked models/ and plots/ (about 140 MB): where what is sent is
# limited, untrack them in the index for the run only (add /models/ and /plots/ to
# .git/info/exclude, `git rm -r -q --cached models plots`; afterwards `git reset -q` and restore
# the exclude file).
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

STUDY=${STUDY:-1}
part "preparing the datasets in the background"
export MNIST_MIRROR=$PWD/.gpu-wheels/mnist
DATASETS=${STUDY_DATASETS:-mnist rot}
((STUDY)) && (
    OMP_NUM_THREADS=4 timeout 120 python3 stages/download.py || exit 1
    pids=()
    for d in $DATASETS; do OMP_NUM_THREADS=4 timeout 150 python3 stages/prepare.py "$d" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || exit 1; done  # a bare `wait` would hide a failure
) > "$OUT/prepare.log" 2>&1 &
PREPARE=$!

part "CUDA tests"
check timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py

part "training images/s per family on the GPU, fp32 and bf16 autocast"
# the data first: a step this small is bound by the CPU that launches its kernels
((STUDY)) && { wait $PREPARE || { echo "FAILED: preparing the datasets"; status=1; }; cat "$OUT/prepare.log"; }
check timeout 120 python3 bench/speed.py --device cuda --rounds 1 --no-old --modes fp32 bf16

part "the tutorial-budget study of $DATASETS, 1 epoch per run, ${JOBS:-11} stages at a time"
left=$((STUDY ? 450 - (SECONDS - START) : 0))  # whatever is left of the 8 minutes, less a margin for part 5
echo "time left for the study: $left s"
if ((left > 30)); then
    # shellcheck disable=SC2086  # the lists are meant to split
    check timeout "$left" python3 bench/study_epoch.py $DATASETS --epochs 1 --jobs "${JOBS:-11}" \
        ${STUDY_VARIANTS:+--variants $STUDY_VARIANTS}
fi

part "torch.compile, two families, batch 256"
left=$((470 - (SECONDS - START)))
if ((left > 30)); then
    check timeout "$left" python3 bench/speed.py --device cuda --rounds 1 --no-old --batches 256 \
        --families stn-28 paper-stn-28 --modes fp32 compile
fi

part "done: exit $status"
exit $status
