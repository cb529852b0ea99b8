"""Copy the generated results into the README between its markers.

<!-- results:begin --> ... <!-- results:end -->      from reports/results.md (upright MNIST)
<!-- benchmark:begin --> ... <!-- benchmark:end -->  from reports/benchmark.md (distorted MNIST)
"""

from __future__ import annotations

import re
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def _tables(report: str) -> list[str]:
    return [t.strip() for t in re.findall(r"(?:^\|.*\|\n)+", report, flags=re.M)]


def _section(report: str, title: str) -> str:
    """The text of the `## ` section whose title starts with `title` (empty if there is none)."""
    match = re.search(rf"^## {re.escape(title)}.*?(?=^## |\Z)", report, flags=re.M | re.S)
    return match.group(0) if match else ""


def results_block(report: str) -> str:
    """The upright report's data note, its headline table and its verdicts on the original study."""
    note = re.search(r"^Data: .*?(?=\n\n)", report, flags=re.M | re.S)
    claims = re.findall(r"^- \*[^*].*$", _section(report, "The original study's conclusions"), flags=re.M)
    parts = ([note.group(0)] if note else []) + _tables(report)[:1] + (["\n".join(claims)] if claims else [])
    return "\n\n".join(parts) + "\n"


def benchmark_block(report: str) -> str:
    """The benchmark's headline, its test-error table (with the paper's numbers) and its verdicts."""
    headline = re.search(r"^## Headline\n\n(.*?)\n\n", report, flags=re.M | re.S)
    error = next(t for t in _tables(report) if "*paper: CNN*" in t)
    verdicts = re.findall(r"^- \*\*.*$", _section(report, "Does the STN beat the CNN"), flags=re.M)
    parts = ([f"**{headline.group(1)}**"] if headline else []) + [error, "\n".join(verdicts)]
    return "\n\n".join(parts) + "\n"


BLOCKS = {
    "results": ("reports/results.md", results_block),
    "benchmark": ("reports/benchmark.md", benchmark_block),
}


def fill(readme: str, name: str, block: str) -> str:
    begin, end = markers(name)
    start, stop = readme.index(begin) + len(begin), readme.index(end)
    return readme[:start] + "\n" + block + readme[stop:]


def main() -> None:
    readme = Path("README.md").read_text()
    for name, (report, extract) in BLOCKS.items():
        readme = fill(readme, name, extract(Path(report).read_text()))
    Path("README.md").write_text(readme)


if __name__ == "__main__":
    main()
