"""`stn-repro`: run the pipeline's pending stages many at once on Dask, then a plain `dvc repro`.

    stn-repro [--workers N] [--scheduler ADDRESS] [TARGETS...]

DVC says which stages are pending (`repo.status`, called once) and in what order (its stage
graph); every pending stage, and every stage downstream of one, becomes one Dask task that
waits for the tasks of its pending upstream stages. A task runs the stage's command and then
`dvc commit`s it (stn.stage_task), so DVC alone writes dvc.lock. A final `dvc repro` finds
those stages up to date and runs whatever is left.

Default: a LocalCluster of N single-threaded worker processes. With --scheduler, any Dask
cluster whose workers see this checkout at the same path (a shared filesystem).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import networkx as nx
import yaml

from stn.entry import run_main
from stn.errors import StnError
from stn.stage_task import StageFailed, StageSpec, remove_outs, run_stage, started

TRAIN_SCRIPT = "stages/train.py"
STOP_WAIT_S = 60  # how long running stages get to stop and clean up after Ctrl-C


def plan(root: Path, targets: list[str]) -> tuple[list[StageSpec], dict[str, list[str]]]:
    """The stages to run, in DVC's order (upstream first), and the pending upstream stages of each."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        if targets:
            scope = {s for t in targets for s in repo.stage.collect(t, with_deps=True)}
        else:
            scope = set(graph.nodes)
        changed = set(repo.status(targets=targets or None, with_deps=bool(targets)))
        by_name = {stage.addressing: stage for stage in scope}
        pending = {by_name[n] for n in changed if n in by_name}
        for stage in list(pending):  # downstream stages rerun on the new outputs
            pending |= nx.ancestors(graph, stage) & scope
        order = [s for s in reversed(list(nx.topological_sort(graph))) if s in pending]
        specs, upstream = [], {}
        for stage in order:
            cmds = stage.cmd if isinstance(stage.cmd, list) else [stage.cmd]
            outs = tuple(out.fs_path for out in stage.outs)
            specs.append(StageSpec(_address(stage, root), str(root), stage.wdir, tuple(cmds), outs))
            upstream[_address(stage, root)] = [
                _address(s, root) for s in nx.descendants(graph, stage) if s in pending
            ]
    return specs, upstream


def _address(stage, root: Path) -> str:
    """The stage's name as DVC takes it from the repository root (stage.addressing is relative
    to the current directory)."""
    dvcfile = os.path.relpath(stage.path, root)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def train_device(root: Path) -> str:
    path = root / "params.yaml"
    params = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    return str(params.get("train", {}).get("device", "auto"))


def gpu_resources(spec: StageSpec, device: str, workers_have_gpu: bool) -> dict[str, float] | None:
    """GPU=1 for a training stage when it trains on CUDA: always for `cuda`, for `auto` only when
    the cluster's workers advertise a GPU resource (else `auto` trains wherever it lands)."""
    is_train = any(TRAIN_SCRIPT in cmd for cmd in spec.cmds)
    if is_train and (device == "cuda" or (device == "auto" and workers_have_gpu)):
        return {"GPU": 1}
    return None


def connect(workers: int, scheduler: str | None, device: str):
    """A Client of the given scheduler, or of a new LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,  # stn-repro reports a failed task once; its worker logs it as an error
        # each worker may run one training at a time on the machine's GPU(s)
        resources={"GPU": 1} if device == "cuda" else None,
    )
    return Client(cluster), cluster


def _has_gpu_workers(client) -> bool:
    workers = client.scheduler_info().get("workers", {}).values()
    return any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers)


def execute(specs: list[StageSpec], upstream: dict[str, list[str]], client, device: str) -> None:
    """Submit one task per stage and wait; raises StageFailed naming the first stage that failed."""
    from distributed import Event, as_completed

    if not specs:
        print("no pending stages", flush=True)
        return
    if "dashboard" in client.scheduler_info().get("services", {}):
        print(f"dashboard: {client.dashboard_link}", flush=True)
    gpu = _has_gpu_workers(client)
    if device == "cuda" and not gpu:
        raise StnError(
            "train.device is cuda but no Dask worker advertises a GPU (start them with --resources GPU=1)"
        )
    run_id = uuid.uuid4().hex  # each stage's log names the run that started it
    stop = Event(f"stn-repro-stop-{run_id}", client=client)
    futures: dict[str, object] = {}
    for spec in specs:
        futures[spec.name] = client.submit(
            run_stage,
            spec,
            *(futures[name] for name in upstream[spec.name]),
            stop_event=stop.name,
            run_id=run_id,
            key=f"stage-{spec.name}-{uuid.uuid4().hex[:8]}",
            pure=False,
            resources=gpu_resources(spec, device, gpu),
        )
    names = {future.key: name for name, future in futures.items()}
    print(f"{len(specs)} stages to run on {len(client.scheduler_info()['workers'])} workers", flush=True)
    start, done, failures = time.monotonic(), 0, []
    try:
        for future in as_completed(list(futures.values())):
            name = names[future.key]
            if future.status == "finished":
                done += 1
                print(
                    f"[{time.monotonic() - start:7.1f}s] {name} done in {future.result():.1f}s, "
                    f"{len(specs) - done - len(failures)} left",
                    flush=True,
                )
            else:
                failures.append(name)
                if _own_failure(future, name):  # not a failure passed down from an upstream stage
                    print(f"[{time.monotonic() - start:7.1f}s] {name} FAILED", flush=True)
    except KeyboardInterrupt:
        _stop(stop, futures, specs, run_id)
        raise
    if failures:
        own = [name for name, f in futures.items() if f.status == "error" and _own_failure(f, name)]
        first = futures[own[0]].exception() if own else futures[failures[0]].exception()
        others = len(failures) - len(own)
        raise StageFailed(f"{first}; {others} stage(s) downstream not run; the {done} finished are recorded")


def _own_failure(future, name: str) -> bool:
    error = future.exception()
    return isinstance(error, StageFailed) and str(error).startswith((f"stage {name} ", f"stage {name}:"))


def _stop(stop, futures: dict, specs: list[StageSpec], run_id: str) -> None:
    """Ctrl-C: tell running stages to stop (they remove their outputs) and wait for them a while.

    A stage that never started (queued on a worker, not yet running) keeps its outputs: they are
    the ones dvc.lock records."""
    print("stopping: interrupting running stages...", file=sys.stderr, flush=True)
    stop.set()
    running = _running_keys(stop.client)
    for future in futures.values():
        if future.status == "pending" and future.key not in running:
            future.cancel()
    deadline = time.monotonic() + STOP_WAIT_S
    while any(f.status == "pending" for f in futures.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    by_name = {spec.name: spec for spec in specs}
    for name, future in futures.items():  # a stage still unaccounted for: no half-written outputs
        if future.status not in ("finished", "cancelled") and started(by_name[name], run_id):
            if not isinstance(_safe_exception(future), StageFailed):
                remove_outs(by_name[name])


def _safe_exception(future):
    try:
        return future.exception(timeout=0)
    except Exception:
        return None


def _running_keys(client) -> set:
    """Keys of the tasks the workers are running now (none known if the scheduler is gone)."""
    try:
        return {key for keys in client.processing().values() for key in keys}
    except Exception:
        return set()


def dvc_repro(root: Path, targets: list[str]) -> None:
    print("dvc repro" + "".join(f" {t}" for t in targets), flush=True)
    code = subprocess.call([sys.executable, "-m", "dvc", "repro", *targets], cwd=root)
    if code != 0:
        raise StnError(f"dvc repro exited with {code}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stn-repro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="LocalCluster workers")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("targets", nargs="*", help="stages or dvc.yaml files, as for dvc repro")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if not (root / "dvc.yaml").is_file():
        raise StnError(f"no dvc.yaml in {root}: run stn-repro in the project's root")
    specs, upstream = plan(root, args.targets)
    device = train_device(root)
    if specs:
        client, cluster = connect(args.workers, args.scheduler, device)
        try:
            execute(specs, upstream, client, device)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        print("no pending stages", flush=True)
    dvc_repro(root, args.targets)


def cli() -> None:
    run_main(main)


if __name__ == "__main__":
    cli()
