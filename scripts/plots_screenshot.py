"""Render this project's DVC plots and take a headless-Chromium screenshot of the page.

    python scripts/plots_screenshot.py docs/dvc-plots.png [--out-dir DIR] [--size 1200x1600]

Runs `dvc plots show -o DIR` in the current directory's DVC project (DIR: a temporary directory unless given;
the page is self-contained thanks to .dvc/config's plots.html_template) and screenshots DIR/index.html.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chromium import screenshot  # noqa: E402


def render_plots(out_dir: Path) -> Path:
    """`dvc plots show -o out_dir`; return the page's path."""
    subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(out_dir)], check=True)
    page = out_dir / "index.html"
    if not page.is_file():
        raise SystemExit(f"dvc plots show wrote no {page} (no plots?)")
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("png", type=Path, help="where to write the screenshot")
    ap.add_argument("--out-dir", type=Path, help="keep the rendered plots here (default: a temporary dir)")
    ap.add_argument("--size", default="1200x1600", help="browser window WIDTHxHEIGHT (default 1200x1600)")
    ap.add_argument("--budget-ms", type=int, default=15_000, help="virtual time for the page's scripts")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="dvc-plots-") as tmp:
        out_dir = (args.out_dir or Path(tmp)).resolve()
        page = render_plots(out_dir)
        png = screenshot(page, args.png, window_size=(width, height), budget_ms=args.budget_ms)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
