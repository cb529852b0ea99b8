"""Training speed near the hardware's limit: images/s, FLOPs and the share of the fp32 peak.

    python bench/speed.py                  # every family, 1 and 2 threads, batch 64 and 256 (~5 min)
    python bench/speed.py --quick          # smoke test (under a minute)
    python bench/speed.py --device cuda    # the same on the GPU (no thread counts)
    python bench/speed.py --device cuda --modes fp32 bf16 compile  # + bf16 autocast, torch.compile

For each model family the study trains, the real training step (`stn.training.loop.train_step`
with the project's optimizer builder, channels-last as params.yaml says) runs on random data of
the family's input shape: a few warm-up steps, then timed steps. Its FLOPs per training image
(forward + backward, `torch.utils.flop_counter.FlopCounterMode`) over the step time give the
achieved GFLOP/s, shown as a share of the peak a large matrix product of the same precision
reaches on the same device and thread count in the same run.

`--modes` measures what the training code does not (yet) do, with the same step: `bf16` runs it
under bf16 autocast (the sampler's grid_sample is on autocast's promote list and so runs in fp32
with the fp32 image; the grid itself is then computed in bf16, so this is an upper bound of what
autocast with an fp32 grid gives), `compile`
with the model wrapped in `torch.compile` (inductor, default mode; compile time not counted),
`bf16-compile` both.

Side by side, the code of commit OLD_COMMIT (the study's training code before any speed work;
`--old COMMIT` for another) is measured the same way: a temporary `git worktree` of it, whose
`stn` package a child process imports. The
two codes take turns, round after round, and each configuration keeps its best round, so that
a slow spell of a shared machine costs both a round rather than one all of its turns. Without
git or that commit the old code is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "d0c6ff2"  # the training code the committed study was run with, before any speed work

# name -> (VariantSpec fields, input side, dataset whose train params it trains with)
FAMILIES = {
    "stn-28": ({"output_size": (28, 28)}, 28, "rot"),  # stn-conv, as params.yaml
    "stn-42": ({"output_size": (28, 28)}, 42, "rts"),
    "cnn-28": ({"stn": False}, 28, "rot"),
    "cnn-42": ({"stn": False}, 42, "rts"),
    "paper-cnn-28": ({"stn": False, "architecture": "paper"}, 28, "rot"),
    "paper-cnn-42": ({"stn": False, "architecture": "paper"}, 42, "rts"),
    "paper-stn-28": ({"architecture": "paper"}, 28, "rot"),
    "paper-stn-42": ({"architecture": "paper"}, 42, "rts"),
}


# -- the child process: measures one code (whatever `stn` is on its PYTHONPATH) -------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


MODES = ("fp32", "bf16", "compile", "bf16-compile")


def peak_gflops(device: torch.device, n: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    """Best GFLOP/s of an n x n x n matrix product of `dtype` (for fp32 with TF32 off: plain fp32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def measure_family(
    job: dict, family: str, threads: int, batch: int, device: torch.device, mode: str = "fp32"
) -> dict:
    """Images/s and FLOPs per image of `family`'s training step in `mode` (MODES), on random data."""
    from stn.models.builder import InputShape, build_model
    from stn.training.loop import train_step
    from stn.training.optim import build_optimizer
    from stn.variant import VariantSpec

    try:
        from stn.params.run import TrainParams
    except ImportError:  # the old code: one module stn.params
        from stn.params import TrainParams

    fields, side, dataset = FAMILIES[family]
    if "architecture" in fields and "architecture" not in VariantSpec.model_fields:
        return {"skipped": "no `architecture: paper` in this code's VariantSpec"}
    params = TrainParams(**job["train"][dataset], batch_size=batch, threads=threads)
    torch.manual_seed(0)
    model = build_model(VariantSpec(**fields), InputShape(size=(side, side))).to(device)
    memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    optimizer = build_optimizer(model, params)
    x = torch.randn(batch, 1, side, side, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    trained = model
    if "compile" in mode:  # training_loss calls forward: compiling forward compiles the model's work
        trained.forward = torch.compile(model.forward)
    bf16 = mode.startswith("bf16")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = train_step(trained, optimizer, x, y)
        loss.item()  # the Trainer reads every step's loss (divergence check): a sync on the GPU

    try:
        step()  # compiles, where it compiles
    except Exception as exc:  # noqa: BLE001 -- one mode failing must not end the benchmark
        return {"skipped": f"{mode} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    for _ in range(job["warmup"]):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < job["seconds"]:
        step()
        steps += 1
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"images_s": steps * batch / seconds, "flops_per_image": counter.get_total_flops() / batch}


def worker(job: dict) -> None:
    """One round of one code: the fp32 peak and every configuration, one JSON line each."""
    from stn.training.allocator import reuse_freed_memory

    device = torch.device(job["device"])
    reuse_freed_memory()  # as the Trainer does
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    modes = job.get("modes", ["fp32"])
    for threads in job["threads"]:
        torch.set_num_threads(threads)
        for precision in dict.fromkeys("bf16" if m.startswith("bf16") else "fp32" for m in modes):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            peak = peak_gflops(device, job["matmul_n"], job["matmul_repeats"], dtype)
            print(json.dumps({"threads": threads, "precision": precision, "peak_gflops": peak}), flush=True)
        for family in job["families"]:
            for batch in job["batches"]:
                for mode in modes:
                    result = measure_family(job, family, threads, batch, device, mode)
                    line = {"family": family, "threads": threads, "batch": batch, "mode": mode, **result}
                    print(json.dumps(line), flush=True)


# -- the parent process: the codes take turns, best round per configuration -----------------------
@contextmanager
def old_code(commit: str):
    """The src folder of a temporary worktree of `commit`, or None (with the reason printed)."""
    folder = Path(tempfile.mkdtemp(prefix="stn-old-"))
    worktree = folder / "tree"
    git = ["git", "-C", str(ROOT)]
    try:  # only its src/ checked out: the models and plots tracked beside it are not needed
        for cmd in (
            [*git, "worktree", "add", "--detach", "--no-checkout", str(worktree), commit],
            ["git", "-C", str(worktree), "checkout", commit, "--", "src"],
        ):
            subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        print(f"old code ({commit}) skipped: no worktree of it could be made: {str(detail).strip()}")
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        yield worktree / "src"
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(worktree)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def run_worker(src: Path, job: dict) -> list[dict]:
    path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))  # src's stn first
    env = os.environ | {"PYTHONPATH": path, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, __file__, "--worker"]  # the job on stdin, the results on stdout
    run = subprocess.run(cmd, env=env, input=json.dumps(job), stdout=subprocess.PIPE, text=True)
    if run.returncode:
        raise SystemExit(f"the measuring process failed (PYTHONPATH={src}); its error is above")
    out = run.stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def table(best: dict, peaks: dict, codes: list[str]):
    """One row per (family, threads, batch): each code's images/s, GFLOP/s and share of the peak."""
    import pandas as pd

    rows = []
    order = lambda c: (list(FAMILIES).index(c[0]), c[1], c[2], MODES.index(c[3]))  # noqa: E731
    configurations = sorted({key[1:] for key in best}, key=order)
    several_modes = len({c[3] for c in configurations}) > 1
    for family, threads, batch, mode in configurations:
        row = {"family": family, "threads": threads, "batch": batch}
        if several_modes:
            row["mode"] = mode
        precision = "bf16" if mode.startswith("bf16") else "fp32"
        for code in codes:
            r = best.get((code, family, threads, batch, mode))
            if r is None:
                continue
            gflops = r["images_s"] * r["flops_per_image"] / 1e9
            row[f"{code} MFLOP/img"] = round(r["flops_per_image"] / 1e6, 2)
            row[f"{code} img/s"] = round(r["images_s"])
            row[f"{code} GFLOP/s"] = round(gflops, 1)
            row[f"{code} % peak"] = round(100 * gflops / peaks[threads, precision], 1)
        if all((code, family, threads, batch, mode) in best for code in codes) and len(codes) == 2:
            row["new/old"] = round(row["new img/s"] / row["old img/s"], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, short timings: a smoke test")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--batches", type=int, nargs="+", help="default: params.yaml's and 256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--modes", nargs="+", default=["fp32"], choices=MODES, help="see above")
    parser.add_argument("--no-old", action="store_true", help="measure this code only, no old code")
    parser.add_argument(
        "--old",
        default=OLD_COMMIT,
        help=f"the commit to compare with (default {OLD_COMMIT}, before any speed work)",
    )
    parser.add_argument(
        "--worker", action="store_true", help=argparse.SUPPRESS
    )  # a child process: one round of one code
    args = parser.parse_args()
    if args.worker:
        worker(json.load(sys.stdin))
        return

    sys.path.insert(0, str(ROOT / "src"))
    from common import machine

    from stn.params.run import load_run_params

    print(f"machine: {machine()}", flush=True)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    train = {d: load_run_params(dataset=d, path=ROOT / "params.yaml").train_for(d) for d in ("rot", "rts")}
    cuda = args.device == "cuda"
    job = {
        "device": args.device,
        "families": args.families,
        "threads": [1] if cuda else args.threads,  # on the GPU one thread only feeds the kernels
        "batches": args.batches or sorted({train["rot"].batch_size, 256}),
        "train": {d: p.model_dump(exclude={"batch_size", "threads"}) for d, p in train.items()},
        "warmup": 3 if args.quick else 10,
        "modes": args.modes,
        "seconds": 0.2 if args.quick else 1.0,
        "matmul_n": (4096 if cuda else 1024) if args.quick else (8192 if cuda else 2048),
        "matmul_repeats": 2 if args.quick else 3,
    }
    rounds = 1 if args.quick else args.rounds
    print(
        f"device {args.device}, channels_last {train['rot'].channels_last}, {rounds} round(s) of "
        f"{job['warmup']} warm-up steps then {job['seconds']} s of timed steps per configuration; "
        "momentum and lr of rot (28x28 families) and rts (42x42)",
        flush=True,
    )

    best: dict[tuple, dict] = {}  # (code, family, threads, batch) -> the round with most images/s
    peaks: dict[tuple, float] = {}  # (threads, precision) -> best GFLOP/s of any round
    skipped: dict[tuple, str] = {}  # (code, family) -> why
    with old_code(args.old) if not args.no_old else _none() as old_src:
        codes = {"new": ROOT / "src"} | ({"old": old_src} if old_src is not None else {})
        for round_ in range(1, rounds + 1):
            order = list(codes) if round_ % 2 else list(reversed(codes))  # who goes first alternates
            for code in order:
                start = time.perf_counter()
                for r in run_worker(codes[code], job):
                    if "peak_gflops" in r:
                        peak_key = (r["threads"], r["precision"])
                        peaks[peak_key] = max(peaks.get(peak_key, 0.0), r["peak_gflops"])
                    elif "skipped" in r:
                        skipped[code, f"{r['family']} {r['mode']}"] = r["skipped"]
                    else:
                        key = (code, r["family"], r["threads"], r["batch"], r["mode"])
                        if r["images_s"] > best.get(key, {}).get("images_s", 0.0):
                            best[key] = r
                print(
                    f"round {round_}: {code} code measured ({time.perf_counter() - start:.0f} s)", flush=True
                )

    for code in codes:
        for why in dict.fromkeys(skipped.values()):
            families = [f for (c, f), w in skipped.items() if c == code and w == why]
            if families:
                print(f"skipped for the {code} code ({why}): {', '.join(families)}")
    for (threads, precision), peak in sorted(peaks.items()):
        print(
            f"{precision} peak, {threads} thread(s): {peak:.1f} GFLOP/s "
            f"({job['matmul_n']}^3 matrix product, best round)"
        )
    print(f"old code: {args.old}" if "old" in codes else "old code: none")
    print(table(best, peaks, list(codes)).to_markdown(index=False))


@contextmanager
def _none():
    yield None


if __name__ == "__main__":
    main()
