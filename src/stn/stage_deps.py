"""Each stage's code deps in dvc.yaml, generated from its script's import closure.

A stage must rerun when, and only when, code it runs changes: its script and every module
of `src/stn` that the script imports, directly or through other modules (package
`__init__.py` files included, imports inside functions too). This module computes that
closure from the source (no imports are executed) and rewrites the code entries of every
`deps:` block in dvc.yaml, a folder standing for its files where the closure holds all of
them; data deps (`data/...`, `models/...`) are left as written.

    python -m stn.stage_deps           # exit 1 and list the stages whose deps are out of date
    python -m stn.stage_deps --write   # rewrite them in place
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

PACKAGE = "stn"
CODE_PREFIXES = ("src/", "stages/")


def _module_file(module: str, src: Path) -> Path | None:
    """The file of a dotted module name under `src`, or None if it is not the project's."""
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(module: str, src: Path) -> list[Path]:
    """The `__init__.py` files Python runs to import `module` (a namespace package has none)."""
    parts = module.split(".")
    inits = [src.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    return [p for p in inits if p.is_file()]


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`: annotations only, never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING"):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def _imported_modules(path: Path, src: Path) -> set[str]:
    """Project modules that `path` imports anywhere in its body (`from a import b` counts a.b
    when b is a module), except under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == PACKAGE and _module_file(n, src)}
    return found


def code_closure(script: Path, root: Path) -> list[str]:
    """The stage script and every project source file it imports, transitively, as paths
    relative to `root` (script first, then sorted). Raises FileNotFoundError for no script."""
    src = root / "src"
    seen: set[Path] = set()
    pending = [root / script]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path, src):
            pending.append(_module_file(module, src))
            pending.extend(_package_inits(module, src))
    files = sorted(p.relative_to(root).as_posix() for p in seen if p != root / script)
    return [Path(script).as_posix(), *files]


def _tracked_files(folder: Path) -> set[Path]:
    """The files DVC hashes for a folder dep (.dvcignore: __pycache__/ and *.pyc)."""
    return {
        p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def as_deps(files: list[str], root: Path) -> list[str]:
    """`files` with every folder whose files all belong to them written as the folder: the same
    stages go stale for an edit, and dvc.lock (which DVC parses on every command) stays short."""
    wanted = {root / f for f in files}
    out: list[str] = []

    def visit(folder: Path) -> None:
        tracked = _tracked_files(folder)
        if tracked and tracked <= wanted:
            out.append(folder.relative_to(root).as_posix())
            return
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name != "__pycache__":
                visit(child)
            elif child in wanted:
                out.append(child.relative_to(root).as_posix())

    visit(root / "src" / PACKAGE)
    return out


def stage_scripts(pipeline: dict) -> dict[str, str]:
    """Stage name -> the script its command runs (`python SCRIPT ...`)."""
    scripts = {}
    for name, stage in pipeline["stages"].items():
        body = stage.get("do", stage)
        scripts[name] = body["cmd"].split()[1]
    return scripts


def expected_deps(pipeline: dict, root: Path) -> dict[str, list[str]]:
    """Stage name -> its generated code deps followed by the data deps dvc.yaml gives."""
    out = {}
    for name, script in stage_scripts(pipeline).items():
        body = pipeline["stages"][name].get("do", pipeline["stages"][name])
        data = [d for d in body.get("deps", []) if not d.startswith(CODE_PREFIXES)]
        script_file, *modules = code_closure(Path(script), root)
        out[name] = [script_file, *as_deps(modules, root), *data]
    return out


def rewrite(text: str, root: Path) -> str:
    """dvc.yaml's text with the code entries of every written-out `deps:` block replaced by the
    closure of its stage's script (aliased blocks follow their anchor)."""
    pipeline = yaml.safe_load(text)
    scripts = stage_scripts(pipeline)
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stage, in_stages, i = None, False, 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^stages:\s*$", line):
            in_stages = True
        elif re.match(r"^\S", line):
            in_stages = False
        elif in_stages and (m := re.match(r"^  ([^\s#][^:]*):\s*$", line)):
            stage = m.group(1)
        out.append(line)
        i += 1
        m = re.match(r"^(\s*)deps:(\s*&\S+)?\s*$", line)
        if not (in_stages and m and stage):
            continue
        item = re.compile(rf"^{m.group(1)}  - (\S+)")
        block = []
        while i < len(lines) and item.match(lines[i]):
            block.append(lines[i])
            i += 1
        data = [ln for ln in block if not item.match(ln).group(1).startswith(CODE_PREFIXES)]
        script, *modules = code_closure(Path(scripts[stage]), root)
        code = [script, *as_deps(modules, root)]
        out += [f"{m.group(1)}  - {path}\n" for path in code] + data
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml in place")
    parser.add_argument("--root", type=Path, default=Path("."), help="the project root")
    args = parser.parse_args(argv)
    path = args.root / "dvc.yaml"
    text = path.read_text()
    new = rewrite(text, args.root)
    if args.write:
        path.write_text(new)
        return 0
    if new != text:
        before, after = (yaml.safe_load(t)["stages"] for t in (text, new))
        stale = [n for n in after if before[n] != after[n]]
        print(f"dvc.yaml: code deps out of date for {', '.join(stale)}; run python -m stn.stage_deps --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
