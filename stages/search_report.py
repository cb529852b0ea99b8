"""Stage search-report: the recipe search (studies.search) on the validation split."""

import json
from pathlib import Path

from stn.analysis.recipe_search import best_recipe, final_errors, load_search, search_report, search_view
from stn.analysis.stats import data_note
from stn.analysis.views import write_views
from stn.atomic import write_json, write_text
from stn.entry import run_main
from stn.layout import PROVENANCE
from stn.params.study import load_params


def main() -> None:
    params = load_params()
    study = params.studies.search
    if not study.recipes:
        write_text(
            "reports/recipe-search.md",
            "# Recipe search\n\nNo recipes searched (`studies.search` is empty).\n",
        )
        write_json(Path("metrics/search.json"), {})
        write_views(Path("plots/views/search"), {"validation.csv": search_view(None)})
        return
    histories = load_search(study)
    table = final_errors(histories)
    write_json(
        Path("metrics/search.json"),
        {"best": best_recipe(table), "val_error": {r: round(float(e), 4) for r, e in table["mean"].items()}},
    )
    write_views(Path("plots/views/search"), {"validation.csv": search_view(histories)})
    note = data_note(json.loads(PROVENANCE.read_text()))
    write_text(
        "reports/recipe-search.md",
        search_report(study, params.recipes, histories, note),
    )
    print(table.round(2).to_string())


if __name__ == "__main__":
    run_main(main)
