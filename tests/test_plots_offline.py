"""`dvc plots show` renders with no network: the project's .dvc/config points plots.html_template at
vendor/dvc-plots-template.html (vega, vega-lite, vega-embed inlined); checked in a real headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from configobj import ConfigObj
from PIL import Image

from stn.analysis.recipe_search import search_view
from stn.analysis.views import study_views, write_views

ROOT = Path(__file__).resolve().parents[1]
VARIANT_COLOR = (0x1F, 0x77, 0xB4)  # the first variant's colour (vega's tableau20) in .dvc/plots/


def _load_script(name: str):
    """Import scripts/<name>.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chromium = _load_script("chromium")
build_plots_template = _load_script("build_plots_template")


class _StartTags(HTMLParser):
    """Start tags in document order; <script>/<style> bodies are raw text, so JS strings yield no tags."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def chromium_bin() -> str:
    found = chromium.find_chromium()
    if found is None:
        reason = "no Chromium: apt-get install chromium (or set $CHROMIUM) to run the offline-plots test"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- CI must run it")
        pytest.skip(reason)
    return found


def _project_template_setting() -> tuple[str, Path]:
    """(plots.html_template as in .dvc/config, the file it names: relative to .dvc/, as DVC reads it)."""
    value = ConfigObj(str(ROOT / ".dvc" / "config"))["plots"]["html_template"]
    return value, (ROOT / ".dvc" / value).resolve()


def test_template_is_built_and_safe():
    value, template = _project_template_setting()
    assert template == ROOT / "vendor" / "dvc-plots-template.html", value
    page = template.read_text(encoding="utf-8")
    assert page == build_plots_template.build(), "stale: run python scripts/build_plots_template.py"
    assert page.count("{plot_divs}") == 1 and "{scripts}" not in page  # no {scripts}: no CDN tags
    scripts = [attrs for tag, attrs in _StartTags(page).tags if tag == "script"]
    # error hook + vega + vega-lite + vega-embed, none cut short by a "</script" inside the JS
    assert len(scripts) == 4 and len(re.findall(r"</script", page, re.IGNORECASE)) == 4
    assert not any("src" in attrs for attrs in scripts)


def _write_project(proj: Path) -> None:
    """A small project: the views of a two-dataset study, Table 1 and the recipe search (from
    stn.analysis.views and recipe_search, as the report stages write them), this project's
    top-level `plots` and templates, and a confusion plot and an image."""
    rng = np.random.default_rng(0)
    histories = pd.DataFrame(
        [
            {
                "dataset": d,
                "variant": v,
                "seed": s,
                "epoch": e,
                "val_accuracy": 1 - 0.5 / (e + 1) - 0.01 * rng.random(),
            }
            for d in ("mnist", "rot")
            for v in ("cnn", "stn-conv")
            for s in (0, 1)
            for e in range(1, 6)
        ]
    )
    summary = pd.DataFrame(
        {
            "dataset": ["mnist", "mnist", "rot", "rot"],
            "variant": ["cnn", "stn-conv"] * 2,
            "n_seeds": 2,
            "accuracy_mean": [0.988, 0.99, 0.95, 0.96],
            "ci95_low": [0.985, 0.987, 0.94, 0.955],
            "ci95_high": [0.991, 0.993, 0.96, 0.965],
        }
    )
    curves = pd.DataFrame(
        [
            {"dataset": d, "variant": v, "seed": s, "angle": a, "accuracy": 0.99 - a / 200}
            for d in ("mnist", "rot")
            for v in ("cnn", "stn-conv")
            for s in (0, 1)
            for a in range(0, 181, 45)
        ]
    )
    for study, datasets in (("upright", ["mnist"]), ("distorted", ["rot"])):
        write_views(
            proj / "plots" / "views" / study,
            study_views(
                summary[summary["dataset"].isin(datasets)],
                histories[histories["dataset"].isin(datasets)],
                curves if study == "distorted" else None,
            ),
        )
    rot = histories["dataset"] == "rot"
    write_views(
        proj / "plots" / "views" / "table1", study_views(summary[summary["dataset"] == "rot"], histories[rot])
    )
    search = histories[rot].assign(recipe=np.where(histories[rot]["seed"] == 0, "sgd", "adamw"))
    search["val_error"] = 100 * (1 - search["val_accuracy"])
    write_views(proj / "plots" / "views" / "search", {"validation.csv": search_view(search)})
    shutil.copytree(ROOT / ".dvc" / "plots", proj / ".dvc" / "plots")
    (proj / "plots" / "images").mkdir()
    pairs = [(i % 3, i % 3 if i % 4 else (i + 1) % 3) for i in range(30)]
    confusion = "actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in pairs)
    (proj / "plots" / "confusion.csv").write_text(confusion)
    Image.new("RGB", (32, 32), (200, 60, 60)).save(proj / "plots" / "images" / "sample.png")
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    plots += [
        {"plots/confusion.csv": {"template": "confusion", "x": "predicted", "y": "actual"}},
        "plots/images/sample.png",
    ]
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))


def _titles() -> list[str]:
    """The titles of this project's top-level plots, in dvc.yaml's order."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    return [props["title"] for entry in plots if isinstance(entry, dict) for props in entry.values()]


def test_top_level_plots_are_a_few_titled_views():
    """`dvc plots show` draws a handful of charts, each with a title and a template of .dvc/plots/;
    no folder of per-run files (plots/train: one chart per run) is shown by default."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    assert 3 <= len(plots) <= 20, plots
    for entry in plots:
        assert isinstance(entry, dict), f"{entry}: every chart has a title"
        ((path, props),) = entry.items()
        assert path.startswith("plots/views/") and props["title"], entry
        assert (ROOT / ".dvc" / "plots" / f"{props['template']}.json").is_file(), entry
    assert len(set(_titles())) == len(plots)


def test_dvc_plots_show_renders_offline(tmp_path, chromium_bin):
    proj, out = tmp_path / "proj", tmp_path / "out"
    proj.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=proj, check=True)
    # the project's plots setting and the template it names, at the same place relative to .dvc/
    value, template = _project_template_setting()
    copy = proj / template.relative_to(ROOT)
    copy.parent.mkdir(parents=True)
    shutil.copyfile(template, copy)
    config = ConfigObj(str(proj / ".dvc" / "config"))
    config["plots"] = {"html_template": value}
    config.write()
    _write_project(proj)

    show = [sys.executable, "-m", "dvc", "plots", "show", "-o", str(out)]
    shown = subprocess.run(show, cwd=proj, capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    html = (out / "index.html").read_text(encoding="utf-8")
    tags = _StartTags(html).tags
    srcs = [attrs["src"] for tag, attrs in tags if tag == "script" and "src" in attrs]
    assert not [s for s in srcs if re.match(r"(https?:)?//", s)], srcs  # no CDN
    assert srcs == [] and "cdn.jsdelivr.net" not in html  # everything inlined
    vega_ids = re.findall(r"vegaEmbed\('#([\w-]+)'", html)
    assert len(vega_ids) == len(_titles()) + 1, vega_ids  # the views and the confusion plot
    specs = [json.loads(spec) for spec in re.findall(r"var spec = (\{.*?\});\n", html, re.DOTALL)]
    assert [spec["title"]["text"] for spec in specs[: len(_titles())]] == _titles()
    images = [attrs["src"] for tag, attrs in tags if tag == "img"]
    assert len(images) == 1 and (out / images[0]).is_file(), images

    # after Vega ran: one <canvas class="marks"> (or <svg class="marks">) per vega plot div, no script errors
    dom = chromium.dump_dom(out / "index.html")
    drawn: dict[str, int] = {}
    current = None
    for tag, attrs in _StartTags(dom).tags:
        if tag == "div" and attrs.get("id") in vega_ids:
            current = attrs["id"]
        elif tag in ("canvas", "svg") and "marks" in (attrs.get("class") or "").split() and current:
            drawn[current] = drawn.get(current, 0) + 1
    assert drawn == dict.fromkeys(vega_ids, 1), drawn
    errors = re.search(r'<pre id="plot-errors">(.*?)</pre>', dom, re.DOTALL)
    assert errors is not None and errors.group(1).strip() == "", errors and errors.group(1)

    png = chromium.screenshot(out / "index.html", tmp_path / "plots.png", window_size=(1200, 3200))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as shot:
        assert shot.size == (1200, 3200)
        rgb = np.asarray(shot.convert("RGB"), dtype=np.int16)
    line = int((np.abs(rgb - np.array(VARIANT_COLOR)) <= 40).all(axis=-1).sum())
    assert line > 100, f"only {line} pixels of the first variant's colour: the canvas was not painted"
