"""Running a stage or command: user errors as one line, interruptions as a clean exit."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from stn.errors import StnError


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_main(main: Callable[[], None]) -> None:
    """Call main(); exit 1 with 'error: ...' on a StnError, 130 on SIGINT/SIGTERM."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main()
    except StnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(
            "interrupted: finished epochs are checkpointed; run the same command "
            "(or dvc repro) again to resume",
            file=sys.stderr,
        )
        sys.exit(130)
