"""Headless Chromium helpers (shared by scripts/plots_screenshot.py and tests/test_plots_offline.py).

Chromium runs offline-friendly: no sandbox (CI runs as root), no GPU, no background networking, a throw-away
profile, and a virtual-time budget so that the page's scripts (Vega drawing) finish before the DOM dump or
screenshot is taken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
)


def find_chromium() -> str | None:
    """$CHROMIUM if set, else the first Chromium/Chrome found (None if there is none)."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


def run_headless(
    url_or_path: str | Path,
    *extra_args: str,
    budget_ms: int = 10_000,
    window_size: tuple[int, int] = (1200, 1600),
    timeout_s: float = 60,
) -> str:
    """Load a page (a file path or URL) in headless Chromium with extra_args; return its stdout."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium not found (apt-get install chromium, or set $CHROMIUM)")
    url = url_or_path if isinstance(url_or_path, str) else Path(url_or_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                f"--window-size={window_size[0]},{window_size[1]}",
                *extra_args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def dump_dom(page: str | Path, **kwargs) -> str:
    """The page's DOM (serialised HTML) after its scripts ran."""
    return run_headless(page, "--dump-dom", **kwargs)


def screenshot(page: str | Path, png: str | Path, **kwargs) -> Path:
    """Write a PNG screenshot of the page (window_size, default 1200x1600) to png."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    run_headless(page, f"--screenshot={png}", **kwargs)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


if __name__ == "__main__":  # `python3 scripts/chromium.py`: print the browser the tests would use, or exit 1
    found = find_chromium()
    print(found or "no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    raise SystemExit(0 if found else 1)
