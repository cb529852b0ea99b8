"""One DVC stage run as a Dask task: its command, then `dvc commit` so that DVC records it.

DVC stays the only writer of dvc.lock: `dvc --wait-for-lock commit --force STAGE` hashes the
stage's deps and outs and writes its entry under DVC's repository lock, so concurrent tasks
queue for the lock only for the commit, not for the whole run (as `dvc repro` would).
`--force` is needed: without it `dvc commit` refuses a stage whose deps or outs changed since
dvc.lock ("unable to commit changed stage", or a prompt on a terminal), which a rerun always is.
The entry it writes equals the one `dvc repro` writes (tests/test_engine.py compares them).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stn.errors import StnError

LOG_DIR = Path(".dvc") / "tmp" / "stn-repro"  # per-stage logs, inside DVC's own ignored tmp folder
POLL_S = 0.5
STOP_S = 30  # how long an interrupted stage gets to checkpoint and exit before SIGKILL


class StageFailed(StnError):
    """A stage's command (or its `dvc commit`) exited non-zero; the message names the stage."""


class StageInterrupted(StnError):
    """The run was stopped while this stage ran; its outputs were removed, nothing recorded."""


@dataclass(frozen=True)
class StageSpec:
    """What a worker needs to run one stage: all plain data, so it pickles to any worker."""

    name: str  # DVC's address of the stage, e.g. train-upright@mnist-cnn-0
    root: str  # the repository root (shared between the client and the workers)
    wdir: str
    cmds: tuple[str, ...]
    outs: tuple[str, ...] = field(default=())  # absolute paths; removed before the run, as DVC does


def _prepare_child() -> None:
    # An engine started in the background (`nohup stn-repro ... &`) ignores SIGINT, and a child
    # would inherit that: the stage must still stop (checkpointed) on the SIGINT the engine sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Linux: the stage gets SIGKILL when the worker thread that started it dies, so a killed
    # worker never leaves a stage writing beside the retry Dask schedules elsewhere.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def remove_outs(spec: StageSpec) -> None:
    """Delete the stage's outputs (files or folders); checkpoints/ is no output and stays."""
    for out in spec.outs:
        path = Path(out)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


RUN_MARK = "# stn-repro run "  # the first line of a stage's log: which engine run started it


def started(spec: StageSpec, run_id: str) -> bool:
    """Whether the engine run `run_id` started this stage (and may have touched its outputs)."""
    try:
        with log_path(spec).open() as log:
            return log.readline() == f"{RUN_MARK}{run_id}\n"
    except OSError:
        return False


def log_path(spec: StageSpec) -> Path:
    return Path(spec.root) / LOG_DIR / (re.sub(r"[^\w.-]+", "_", spec.name) + ".log")


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1]


def _kill_leftover(pidfile: Path, wdir: str) -> None:
    """Kill the process group of an earlier attempt of this stage on this host whose worker died,
    so a retry never writes beside it. The group's leader (the stage's shell) may be gone: it dies
    with its worker (PR_SET_PDEATHSIG), while a shell that does not exec (dash) leaves its child,
    the training, running in the group."""
    try:
        host, pid = pidfile.read_text().split()
        group = int(pid)
    except (OSError, ValueError):
        return
    if host != socket.gethostname():
        return
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            # /proc/PID/stat: pid (comm) state ppid pgrp ...
            pgrp = int((proc / "stat").read_text().rpartition(")")[2].split()[2])
            if pgrp == group and os.readlink(proc / "cwd") == os.path.realpath(wdir):
                os.killpg(group, signal.SIGKILL)
                return
        except (OSError, ValueError, IndexError):
            continue


def _run(
    cmd: list[str] | str, cwd: str, log, stopped: Callable[[], bool], shell: bool, pidfile: Path | None = None
) -> int:
    """Run cmd with output to log; on stop, SIGINT it (then SIGKILL) and raise KeyboardInterrupt."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        shell=shell,
        stdout=log,
        stderr=subprocess.STDOUT,
        # the shell DVC runs a stage's cmd with; bash execs a simple command, so the stage
        # itself (not only its shell) dies with the worker
        executable=(os.environ.get("SHELL") or "/bin/sh") if shell else None,
        start_new_session=True,  # a terminal's Ctrl-C reaches the engine, which stops stages itself
        preexec_fn=_prepare_child if sys.platform == "linux" else None,
    )
    if pidfile is not None:
        pidfile.write_text(f"{socket.gethostname()} {proc.pid}\n")
    while True:
        try:
            return proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            if stopped():
                _interrupt_group(proc, wait_s=STOP_S)
                raise KeyboardInterrupt from None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _interrupt_group(proc: subprocess.Popen, wait_s: float) -> None:
    """SIGINT the command's whole process group (the stage checkpoints and exits), SIGKILL it after wait_s.

    The group, not only proc: a shell that does not exec a simple command (dash, /bin/sh on
    Debian, which DVC uses when $SHELL is unset) neither passes SIGINT on nor waits for its child.
    """
    pgid = proc.pid  # start_new_session: the shell leads its own group
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_stage(spec: StageSpec, *upstream: object, stop_event: str | None = None, run_id: str = "") -> float:
    """Run one stage and record it with `dvc commit`; returns the seconds it took.

    `upstream` are the results of the stages this one waits for (only there to order tasks).
    The log's first line names `run_id` (the engine's run) before any output is touched, so
    that the engine can tell a stage this run started from one it never reached (`started`).
    Raises StageFailed when the command or the commit fails (outputs removed), and
    StageInterrupted when the Dask Event `stop_event` is set meanwhile (outputs removed).
    """
    stopped = _stop_checker(stop_event)
    start = time.monotonic()
    log = log_path(spec)
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile = log.with_suffix(".pid")
    _kill_leftover(pidfile, spec.wdir)
    try:
        with log.open("w") as out:
            out.write(f"{RUN_MARK}{run_id}\n")
            out.flush()
            remove_outs(spec)
            for cmd in spec.cmds:
                try:
                    code = _run(cmd, spec.wdir, out, stopped, shell=True, pidfile=pidfile)
                finally:  # its process has ended: a later pid of that number is not this stage's
                    pidfile.unlink(missing_ok=True)
                if code != 0:
                    remove_outs(spec)
                    raise StageFailed(
                        f"stage {spec.name} failed (exit {code}): {_last_error(log)} (log: {log})"
                    )
            if stopped():
                raise KeyboardInterrupt
            commit = [
                sys.executable,
                "-m",
                "dvc",
                "--wait-for-lock",
                "commit",
                "--force",
                "--quiet",
                spec.name,
            ]
            out.write(f"$ {' '.join(commit[1:])}\n")
            out.flush()
            code = _run(commit, spec.root, out, lambda: False, shell=False)  # a commit is short: let it end
            if code != 0:
                raise StageFailed(f"stage {spec.name}: dvc commit failed: {_last_error(log)} (log: {log})")
    except KeyboardInterrupt:
        remove_outs(spec)
        raise StageInterrupted(f"stage {spec.name} interrupted; outputs removed") from None
    return time.monotonic() - start


def _stop_checker(name: str | None) -> Callable[[], bool]:
    if name is None:
        return lambda: False
    from distributed import Event  # only inside a Dask worker

    event = Event(name)
    return lambda: event.is_set()
