"""stn-repro (stn.engine): pending DVC stages as Dask tasks, DVC the only writer of dvc.lock."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import dvc, make_project, tiny_params

from stn.engine import _stop, execute, gpu_resources, plan
from stn.stage_task import RUN_MARK, StageSpec, _run, log_path, remove_outs, started

OUTPUTS = ("models", "metrics", "plots", "reports")
DEADLINE_S = 180


def _env(mirror: Path) -> dict:
    return {**os.environ, "MNIST_MIRROR": str(mirror)}


def _engine(project: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stn.engine", *args], cwd=project, env=env, capture_output=True, text=True
    )


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"]


def _clean(project: Path, *targets: str) -> bool:
    return dvc(project, "status", *targets).stdout.strip().startswith("Data and pipelines are up to date")


def _same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths of files that differ (or exist on one side only) under a and b."""
    files = lambda root: {p.relative_to(root) for p in root.rglob("*") if p.is_file()}  # noqa: E731
    left, right = files(a), files(b)
    common = left & right
    differ = [p for p in common if not filecmp.cmp(a / p, b / p, shallow=False)]
    return sorted(str(p) for p in (left ^ right) | set(differ))


def _poll(
    check: Callable[[], object], what: str, deadline_s: float = DEADLINE_S, every_s: float = 0.05
) -> object:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


def _train_process(project: Path) -> int | None:
    """The pid of a running `stages/train.py` whose working directory is project."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if b"stages/train.py" in cmdline and Path(cwd) == project and b"/bin/sh" not in cmdline:
            return int(proc.name)
    return None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _argv0(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()


def _checkpoint(project: Path) -> Path | None:
    return next((project / "checkpoints").rglob("*.pt"), None) if (project / "checkpoints").is_dir() else None


def _pending_signals(pid: int) -> int:
    """The signals pending for pid (process- and thread-directed), as a bit mask."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _freeze_after_first_checkpoint(project: Path) -> int:
    """Stop (SIGSTOP) the project's training as soon as its first checkpoint exists; returns its pid.

    Tiny epochs take milliseconds on a fast machine: frozen, the training cannot finish (and
    discard its checkpoint) before the test has interrupted it, however fast the machine is.
    """
    train = _poll(lambda: _train_process(project), "the training to start")
    _poll(lambda: _checkpoint(project), "the first checkpoint", every_s=0.002)
    os.kill(train, signal.SIGSTOP)
    assert _checkpoint(project) is not None, "the training finished before it could be stopped"
    return train


# -- without DVC ---------------------------------------------------------------------------


def test_training_stages_ask_for_a_gpu_only_when_they_train_on_one() -> None:
    train = StageSpec("train-upright@mnist-cnn", "/r", "/r", ("python stages/train.py upright mnist cnn",))
    evaluate = StageSpec(
        "evaluate-upright@mnist-cnn", "/r", "/r", ("python stages/evaluate.py upright mnist cnn",)
    )
    assert gpu_resources(train, "cuda", workers_have_gpu=True) == {"GPU": 1}
    assert gpu_resources(train, "auto", workers_have_gpu=True) == {"GPU": 1}
    assert gpu_resources(train, "auto", workers_have_gpu=False) is None
    assert gpu_resources(train, "cpu", workers_have_gpu=True) is None
    assert gpu_resources(evaluate, "cuda", workers_have_gpu=True) is None


def test_remove_outs_keeps_everything_else(tmp_path: Path) -> None:
    (tmp_path / "out" / "images").mkdir(parents=True)
    (tmp_path / "out" / "images" / "a.png").write_text("x")
    (tmp_path / "out" / "m.json").write_text("{}")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "c.pt").write_text("x")
    spec = StageSpec("s", str(tmp_path), str(tmp_path), ("true",), (str(tmp_path / "out" / "images"),))
    remove_outs(spec)
    remove_outs(spec)  # nothing left to remove: no error
    assert not (tmp_path / "out" / "images").exists()
    assert (tmp_path / "out" / "m.json").exists() and (tmp_path / "checkpoints" / "c.pt").exists()


def test_ctrl_c_keeps_the_outputs_of_stages_that_never_started(tmp_path: Path) -> None:
    """A stage queued on a worker when Ctrl-C comes never ran: its outputs (those dvc.lock
    records) stay; a stage that started and is unaccounted for loses its half-written ones."""
    specs = []
    for name in ("queued", "started"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.json").write_text("{}")
        specs.append(StageSpec(name, str(tmp_path), str(tmp_path), ("true",), (str(tmp_path / name),)))
    log_path(specs[0]).parent.mkdir(parents=True)
    log_path(specs[0]).write_text(f"{RUN_MARK}an-earlier-run\n")  # a log of an earlier run
    log_path(specs[1]).write_text(f"{RUN_MARK}this-run\nepoch 1/9 ...\n")
    assert started(specs[1], "this-run") and not started(specs[0], "this-run")
    lost = lambda: SimpleNamespace(status="lost", key=None, exception=lambda timeout=0: None)  # noqa: E731
    stop = SimpleNamespace(set=lambda: None, client=None)
    _stop(stop, {"queued": lost(), "started": lost()}, specs, "this-run")
    assert (tmp_path / "queued" / "m.json").is_file() and not (tmp_path / "started").exists()


def test_a_stage_answers_sigint_even_when_the_engine_ignores_it(tmp_path: Path) -> None:
    """`nohup stn-repro &` ignores SIGINT, and children inherit that; a stage's command must not,
    or the engine's SIGINT (stop at a checkpoint) would do nothing until its SIGKILL."""
    check = f"{sys.executable} -c 'import signal; print(signal.getsignal(signal.SIGINT))'"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with (tmp_path / "log").open("w") as log:
            assert _run(check, str(tmp_path), log, lambda: False, shell=True) == 0
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "default_int_handler" in (tmp_path / "log").read_text()


# -- the tiny study ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_study(tiny_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study after a plain `dvc repro`: the reference every engine run must equal."""
    project = make_project(tmp_path_factory.mktemp("plain") / "p", tiny_params(variants=("cnn", "stn-conv")))
    dvc(project, "repro", env=_env(tiny_mirror))
    return project


def _assert_equals_plain(project: Path, plain: Path) -> None:
    for folder in OUTPUTS:
        assert _same_tree(project / folder, plain / folder) == [], folder
    # same entries; their order in the file is the order the stages finished in
    assert _lock(project) == _lock(plain)
    assert _clean(project)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
def test_engine_equals_plain_repro(
    workers: int, plain_study: Path, tiny_mirror: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", tiny_params(variants=("cnn", "stn-conv")))
    result = _engine(project, "--workers", str(workers), env=_env(tiny_mirror))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"17 stages to run on {workers} workers" in result.stdout  # with the two empty studies' reports
    assert "benchmark done in" in result.stdout and ", 0 left" in result.stdout
    assert "Running stage" not in result.stdout  # the final dvc repro found everything done
    _assert_equals_plain(project, plain_study)


@pytest.fixture
def dask_cluster(tiny_mirror: Path, tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded workers on 127.0.0.1, as separate processes."""
    scheduler_file = tmp_path / "scheduler.json"
    env = _env(tiny_mirror)
    dask = [sys.executable, "-m", "dask"]
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
             "--scheduler-file", str(scheduler_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        _poll(lambda: scheduler_file.is_file() and scheduler_file.stat().st_size > 0, "the scheduler file")
        address = yaml.safe_load(scheduler_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [*dask, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                     "--dashboard-address", ":0"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=DEADLINE_S)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_engine_on_a_separate_scheduler_and_workers(
    dask_cluster: str, plain_study: Path, tiny_mirror: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", tiny_params(variants=("cnn", "stn-conv")))
    result = _engine(project, "--scheduler", dask_cluster, "evaluate-upright", env=_env(tiny_mirror))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 stages to run on 2 workers" in result.stdout  # download, prepare, 2 trainings, 2 evaluations
    for folder in ("models/upright", "metrics/eval/upright"):
        assert _same_tree(project / folder, plain_study / folder) == [], folder
    lock = _lock(project)
    assert lock == {stage: entry for stage, entry in _lock(plain_study).items() if stage in lock}
    assert len(lock) == 6 and _clean(project, "evaluate-upright")


# -- DVC's lock under concurrent commits ---------------------------------------------------


@pytest.mark.slow
def test_eight_concurrent_stages_leave_a_complete_lock_ten_times(tmp_path: Path) -> None:
    """Eight independent stages finish at once, ten rounds in a row: every round, DVC's lock
    serialises their `dvc commit`s into a complete dvc.lock and `dvc status` is clean."""
    from distributed import Client, LocalCluster

    project = tmp_path / "toy"
    project.mkdir()
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=project, check=True)
    dvc(project, "config", "core.analytics", "false")
    write = "import sys; open(f'out/{sys.argv[1]}.txt', 'w').write(sys.argv[1] + ' ' + sys.argv[2])"
    (project / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "toy": {
                        "matrix": {"i": list(range(8))},
                        "cmd": f'python -c "{write}" ${{item.i}} ${{round}}',
                        "params": ["round"],
                        "outs": [{"out/${item.i}.txt": {"cache": False}}],
                    }
                }
            }
        )
    )
    (project / "out").mkdir()
    with LocalCluster(n_workers=8, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            for round_ in range(10):
                (project / "params.yaml").write_text(f"round: {round_}\n")
                specs, upstream = plan(project, [])
                assert len(specs) == 8
                execute(specs, upstream, client, "cpu")
                lock = _lock(project)
                assert sorted(lock) == [f"toy@{i}" for i in range(8)], round_
                assert all(entry["params"]["params.yaml"]["round"] == round_ for entry in lock.values())
                assert _clean(project), round_


# -- faults --------------------------------------------------------------------------------

LONG_EPOCHS = 100  # long enough to stop a tiny training between two epochs
TRAIN = "train-upright@mnist-stn-conv"
MODEL, CURVE = Path("models/upright/mnist/stn-conv/s0.pt"), Path("plots/train/upright/mnist/stn-conv/s0.csv")
LOG = Path(".dvc/tmp/stn-repro/train-upright_mnist-stn-conv.log")


@pytest.fixture(scope="module")
def long_training(tiny_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted training of many tiny epochs, by plain `dvc repro`."""
    params = tiny_params(epochs=LONG_EPOCHS, variants=("stn-conv",))
    project = make_project(tmp_path_factory.mktemp("long") / "p", params)
    dvc(project, "repro", TRAIN, env=_env(tiny_mirror))
    return project


def _start_long_training(
    mirror: Path, tmp_path: Path, shell: str | None = None
) -> tuple[Path, subprocess.Popen]:
    """A new tiny project and `stn-repro --workers 2` training it in the background (output piped).

    shell: the $SHELL that stage commands run with (as in DVC); None keeps the caller's.
    """
    project = make_project(tmp_path / "p", tiny_params(epochs=LONG_EPOCHS, variants=("stn-conv",)))
    env = _env(mirror) if shell is None else {**_env(mirror), "SHELL": shell}
    engine = subprocess.Popen(
        [sys.executable, "-m", "stn.engine", "--workers", "2", TRAIN],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return project, engine


@pytest.mark.slow
def test_a_killed_worker_resumes_training_from_its_checkpoint(
    long_training: Path, tiny_mirror: Path, tmp_path: Path
) -> None:
    # /bin/sh: DVC's shell where $SHELL is unset (as in CI); dash does not exec the training
    project, engine = _start_long_training(tiny_mirror, tmp_path, shell="/bin/sh")
    train = None
    try:
        train = _freeze_after_first_checkpoint(project)
        worker = _parent(train)
        while Path(_argv0(worker)).name in ("sh", "bash", "dash"):  # the stage's shell, if it did not exec
            worker = _parent(worker)
        # The stage's shell dies with its worker; a training started by a shell that did not exec
        # (dash) outlives both, until the retry Dask schedules kills the old attempt's group.
        os.kill(worker, signal.SIGKILL)
        out, _ = engine.communicate(timeout=DEADLINE_S)
        assert _poll(lambda: not _alive(train), "the old attempt's training to be killed", 30)
    finally:
        engine.kill()
        if train is not None and _alive(train):
            os.kill(train, signal.SIGKILL)
    assert engine.returncode == 0, out
    log = (project / LOG).read_text()
    assert "mnist/stn-conv-s0: resuming after epoch" in log
    for path in (MODEL, CURVE):
        assert filecmp.cmp(project / path, long_training / path, shallow=False), path
    assert _lock(project)[TRAIN] == _lock(long_training)[TRAIN]


@pytest.mark.slow
def test_ctrl_c_leaves_no_half_written_stage_and_the_next_run_resumes(
    long_training: Path, tiny_mirror: Path, tmp_path: Path
) -> None:
    # /bin/sh is what DVC runs a stage with where $SHELL is unset; on Debian it is dash, which
    # neither execs the training nor passes SIGINT on: the engine must reach the training itself
    project, engine = _start_long_training(tiny_mirror, tmp_path, shell="/bin/sh")
    try:
        train = _freeze_after_first_checkpoint(project)
        engine.send_signal(signal.SIGINT)
        # the engine passes Ctrl-C on to the stage; let the training go on once it has arrived
        _poll(lambda: _pending_signals(train) & (1 << (signal.SIGINT - 1)), "the stage's SIGINT")
        os.kill(train, signal.SIGCONT)
        out, _ = engine.communicate(timeout=DEADLINE_S)
    finally:
        engine.kill()
    assert engine.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    assert _poll(lambda: _train_process(project) is None, "the training to stop", 30)
    assert not (project / MODEL).exists() and not (project / CURVE).exists()
    lock = _lock(project)
    assert TRAIN not in lock and "prepare@mnist" in lock  # finished stages stay recorded
    assert _checkpoint(project) is not None

    result = _engine(project, "--workers", "2", TRAIN, env=_env(tiny_mirror))
    assert result.returncode == 0, result.stdout + result.stderr
    log = (project / LOG).read_text()
    assert "mnist/stn-conv-s0: resuming after epoch" in log
    for path in (MODEL, CURVE):
        assert filecmp.cmp(project / path, long_training / path, shallow=False), path


@pytest.mark.slow
def test_a_failing_stage_stops_its_dependants_only(tiny_mirror: Path, tmp_path: Path) -> None:
    params = tiny_params(variants=("stn-conv",))
    params["datasets"]["rot"]["train"] = {"lr": 1.0e12}  # rot/stn-conv-s0 diverges
    project = make_project(tmp_path / "p", params)
    result = _engine(project, "--workers", "2", env=_env(tiny_mirror))
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stage train-distorted@rot-stn-conv failed" in errors[0], out
    assert "rot/stn-conv-s0: training diverged" in errors[0]
    assert "Traceback" not in out and "Running stage" not in out  # no final dvc repro
    lock = _lock(project)
    assert {"train-upright@mnist-stn-conv", "evaluate-upright@mnist-stn-conv", "compare"} <= set(lock)
    failed = {"train-distorted@rot-stn-conv", "evaluate-distorted@rot-stn-conv", "benchmark"}
    assert not failed & set(lock)
    assert (
        not (project / "models" / "distorted").exists() and not (project / "metrics" / "distorted").exists()
    )
