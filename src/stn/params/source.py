"""Reading params.yaml: plain YAML only, so that every key has exactly one place."""

from __future__ import annotations

from pathlib import Path

import yaml

from stn.errors import ParamsError

_WHY = (
    "anchors (&name), aliases (*name) and merge keys (<<) are not allowed in params.yaml: "
    "DVC's `exp run -S` edits the file as a tree in which an alias shares its anchor's values, "
    "so an edit to one place would be dropped or would change every place; write the values "
    "out in each place"
)


def _reject_shared_nodes(text: str, source: str) -> None:
    """Raise ParamsError naming the first anchor, alias or merge key and its line (1-based)."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise ParamsError(f"{source}:{line}: alias *{event.anchor}: {_WHY}")
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise ParamsError(f"{source}:{line}: anchor &{event.anchor}: {_WHY}")
        if isinstance(event, yaml.ScalarEvent) and event.value == "<<" and event.style is None:
            raise ParamsError(f"{source}:{line}: merge key <<: {_WHY}")


def read_params_file(path: Path | str = "params.yaml") -> dict:
    """The parsed mapping of a params file.

    Raises ParamsError when the file is missing, is not YAML, is not a mapping, or uses
    anchors, aliases or merge keys (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found; run from the project root")
    text = path.read_text()
    try:
        _reject_shared_nodes(text, str(path))
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return raw
