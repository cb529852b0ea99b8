"""Copy the generated results (reports/results.md) into the README between its markers."""

from __future__ import annotations

import re
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def results_block(report: str) -> str:
    """The report's data note and its two tables, as they appear in the README."""
    note = re.search(r"^Data: .*?(?=\n\n)", report, flags=re.M | re.S)
    tables = re.findall(r"(?:^\|.*\|\n)+", report, flags=re.M)
    parts = ([note.group(0)] if note else []) + [t.strip() for t in tables[:2]]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    readme = Path("README.md").read_text()
    block = results_block(Path("reports/results.md").read_text())
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    Path("README.md").write_text(readme[:start] + "\n" + block + readme[end:])


if __name__ == "__main__":
    main()
