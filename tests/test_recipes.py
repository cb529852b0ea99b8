"""Training recipes: optimizers, schedules, named recipes in params.yaml and the recipe search study."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import N_TEST, N_TRAIN, ROOT, interrupt_fit
from reference import TUTORIAL_NORMALIZATION

from stn.analysis.recipe_search import best_recipe, final_errors, load_search, search_report, search_runs
from stn.datasets.mnist import prepare_mnist
from stn.datasets.prepare import prepare_dataset
from stn.datasets.store import load_arrays, read_meta
from stn.errors import ParamsError, StnError
from stn.models.builder import build_model
from stn.params.run import TrainOverrides, TrainParams, load_run_params, load_stage_seeds, split_group
from stn.params.study import RecipeSearchSpec, parse_params
from stn.training.loop import Trainer
from stn.training.optim import build_optimizer, lr_factor, set_lr
from stn.variant import VariantSpec

DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())
QUIET = lambda message: None  # noqa: E731


def test_onecycle_is_torchs_one_cycle_schedule() -> None:
    params = TrainParams(lr=0.003, epochs=3, schedule="onecycle", optimizer="adamw")
    steps = 7
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=params.epochs * steps, cycle_momentum=False
    )
    expected = []
    for _ in range(params.epochs * steps):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        torch_schedule.step()
    ours = [
        params.lr * lr_factor(params, epoch, step, steps)
        for epoch in range(1, params.epochs + 1)
        for step in range(steps)
    ]
    assert ours == pytest.approx(expected, rel=1e-12)
    assert max(ours) == pytest.approx(params.lr, rel=0.01) and ours[0] == pytest.approx(params.lr / 25)


def test_step_schedule_divides_by_ten_after_each_third() -> None:
    params = TrainParams(epochs=9, schedule="step")
    factors = [lr_factor(params, epoch) for epoch in range(1, 10)]
    assert factors == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    odd = TrainParams(epochs=10, schedule="step")  # 10 epochs: drops after epochs 4 and 7
    assert [lr_factor(odd, e) for e in (4, 5, 7, 8, 10)] == pytest.approx([1, 0.1, 0.1, 0.01, 0.01])


def test_optimizers_follow_params() -> None:
    model = build_model(VariantSpec(loc_lr_scale=0.1))
    adamw = build_optimizer(model, TrainParams(optimizer="adamw", lr=0.003, weight_decay=0.01))
    assert isinstance(adamw, torch.optim.AdamW)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.01, 0.01]
    nesterov = build_optimizer(model, TrainParams(momentum=0.9, nesterov=True, weight_decay=1e-4))
    assert isinstance(nesterov, torch.optim.SGD)
    assert all(
        g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 1e-4 for g in nesterov.param_groups
    )
    set_lr(adamw, TrainParams(optimizer="adamw", lr=0.003), 1)
    assert [g["lr"] for g in adamw.param_groups] == pytest.approx([0.0003, 0.003])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"optimizer": "adamw", "momentum": 0.9}, "AdamW has no momentum setting"),
        ({"nesterov": True}, "nesterov: needs optimizer sgd with momentum > 0"),
        ({"optimizer": "adamw", "nesterov": True}, "nesterov: needs optimizer sgd"),
        ({"schedule": "triangle"}, "Input should be 'constant', 'cosine', 'step' or 'onecycle'"),
        ({"optimizer": "adam"}, "Input should be 'sgd' or 'adamw'"),
        ({"weight_decay": -1}, "greater than or equal to 0"),
    ],
)
def test_inconsistent_train_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainParams(**settings)


def _params_with(**changes: object) -> dict:
    params = copy.deepcopy(DEFAULT)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    return params


def test_a_recipe_replaces_the_datasets_budget(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(DEFAULT, sort_keys=False))
    params = load_run_params("rts", "paper-cnn", path, recipe="adamw-lr0_003-e9")
    recipe = DEFAULT["recipes"]["adamw-lr0_003-e9"]
    train = params.train_for("rts", "adamw-lr0_003-e9")
    assert train.model_dump(include=set(recipe)) == recipe
    assert train.threads == DEFAULT["train"]["threads"]  # keys the recipe does not give: the train section's
    assert params.train_for("rts").momentum == DEFAULT["datasets"]["rts"]["train"]["momentum"]  # no recipe
    with pytest.raises(ParamsError, match=r"recipes.nope: not defined; defined: sgd-lr0_01-e9"):
        load_run_params("rts", "paper-cnn", path, recipe="nope")


def test_a_recipe_that_makes_an_invalid_train_section_is_refused() -> None:
    bad = copy.deepcopy(DEFAULT)
    bad["recipes"]["adamw-lr0_01-e9"]["momentum"] = 0.5
    with pytest.raises(
        ParamsError, match=r"train with recipes.adamw-lr0_01-e9: .*AdamW has no momentum setting"
    ):
        parse_params(bad)


def test_a_recipe_states_every_training_setting() -> None:
    """A recipe's runs read no key of the train section but the machine's, as their stages declare."""
    bad = copy.deepcopy(DEFAULT)
    del bad["recipes"]["sgd-lr0_01-e9"]["weight_decay"]
    with pytest.raises(
        ParamsError, match=r"recipes.sgd-lr0_01-e9: a recipe states every .*missing: weight_decay"
    ):
        parse_params(bad)


def test_a_datasets_own_train_settings_are_checked_like_a_recipes() -> None:
    bad = copy.deepcopy(DEFAULT)
    bad["datasets"]["rot"]["train"]["optimizer"] = "adamw"  # with rot's momentum 0.9
    with pytest.raises(ParamsError, match=r"train with datasets.rot.train: .*AdamW has no momentum setting"):
        parse_params(bad)
    bad["datasets"]["rot"]["train"].update(optimizer="sgd", momentum=0.0, nesterov=True)
    with pytest.raises(ParamsError, match=r"nesterov: needs optimizer sgd with momentum > 0"):
        parse_params(bad)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"recipes": ["nope"]}, r"studies.search.recipes: recipe 'nope' is not defined"),
        ({"variants": ["paper-nope"]}, r"studies.search.variants: variant 'paper-nope' is not defined"),
        ({"recipes": []}, r"studies.search: .*recipes: empty, so the study runs nothing"),
        ({"seeds": []}, r"studies.search.seeds: List should have at least 1 item"),
        ({"datasets": ["rot", "rot"]}, r"datasets must be distinct"),
    ],
)
def test_bad_search_studies_are_refused(search: dict, message: str) -> None:
    params = copy.deepcopy(DEFAULT)
    params["studies"]["search"].update(search)
    with pytest.raises(ParamsError, match=message):
        parse_params(params)


def test_an_empty_search_runs_nothing_and_is_valid() -> None:
    params = copy.deepcopy(DEFAULT)
    params["studies"]["search"] = {"datasets": [], "variants": [], "recipes": []}
    assert parse_params(params).studies.search.seeds == [0]


def test_stage_groups_name_study_and_recipe(tmp_path: Path) -> None:
    assert split_group("search/adamw-lr0_003-e9") == ("search", "adamw-lr0_003-e9")
    assert split_group("distorted-extra") == ("distorted-extra", None)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"studies": {"search": {"seeds": [4, 5]}}}))
    assert load_stage_seeds("search/adamw-lr0_003-e9", path) == [4, 5]


def test_onecycle_run_resumes_to_the_same_result(tiny_mirror: Path, tmp_path: Path) -> None:
    """The learning rate is a pure function of (epoch, step): an interrupted one-cycle run
    resumes from its checkpoint to the same weights as an uninterrupted one."""
    prepare_mnist(tmp_path / "raw", {"train": N_TRAIN, "test": N_TEST}, str(tiny_mirror))
    prepare_dataset("mnist", tmp_path / "raw", tmp_path / "mnist", None, 0, 0, TUTORIAL_NORMALIZATION)
    data = (read_meta(tmp_path / "mnist"), *load_arrays(tmp_path / "mnist", "train"))
    params = TrainParams(
        epochs=3, batch_size=32, lr=0.003, optimizer="adamw", schedule="onecycle", weight_decay=0.01
    )
    spec = VariantSpec(loc_lr_scale=0.1)
    whole = Trainer(spec, params, 1, *data, log=QUIET)
    whole.fit()
    checkpoint = tmp_path / "ck.pt"
    first = Trainer(spec, params, 1, *data, checkpoint=checkpoint, log=QUIET)
    interrupt_fit(first, at_epoch=2)
    second = Trainer(spec, params, 1, *data, checkpoint=checkpoint, log=QUIET)
    second.fit()
    assert [h.loss for h in second.history] == [h.loss for h in whole.history]
    for a, b in zip(second.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert np.isfinite(whole.history[-1].loss)


def test_the_search_report_ranks_recipes_by_their_last_validation_error(tmp_path: Path) -> None:
    study = RecipeSearchSpec(
        datasets=["rot", "rts"], variants=["paper-cnn"], recipes=["a", "b"], seeds=[0, 1]
    )
    final = {("a", "rot"): 0.97, ("a", "rts"): 0.90, ("b", "rot"): 0.95, ("b", "rts"): 0.96}
    with pytest.raises(StnError, match="missing; run dvc repro to train rot/paper-cnn-s0"):
        load_search(study, tmp_path)
    for recipe in study.recipes:
        for paths in search_runs(study, recipe, tmp_path):
            paths.history.parent.mkdir(parents=True, exist_ok=True)
            last = final[(recipe, paths.dataset)] + 0.01 * paths.seed  # seeds 0, 1: mean + 0.005
            history = {
                "epoch": [1, 2],
                "loss": [1.0, 0.5],
                "accuracy": [0.5, 0.9],
                "val_accuracy": [0.5, last],
            }
            pd.DataFrame(history).to_csv(paths.history, index=False)
    assert paths.history == tmp_path / "plots/train/search/b/rts/paper-cnn/s1.csv"
    histories = load_search(study, tmp_path)
    table = final_errors(histories)
    assert table.loc["a", "rts paper-cnn"] == pytest.approx(100 * (1 - 0.905))
    assert table["mean"].to_dict() == pytest.approx({"a": 100 * (1 - 0.94), "b": 100 * (1 - 0.96)})
    assert best_recipe(table) == "b"
    recipes = {
        name: TrainOverrides(**DEFAULT["recipes"][name]) for name in ("sgd-lr0_1-e9", "adamw-lr0_003-e9")
    }
    recipes = {"a": recipes["sgd-lr0_1-e9"], "b": recipes["adamw-lr0_003-e9"]}
    report = search_report(study, recipes, histories, "Data: tiny.")
    assert "Lowest mean validation error: **`b`**" in report and "| adamw" in report
    assert "| a        | sgd" in report and "nan" not in report  # every setting from the recipe


TABLE1 = {
    "datasets": ["rot"],
    "variants": ["paper-cnn", "paper-st-affine"],
    "recipes": ["sgd-lr0_01-e9"],
    "seeds": [0, 1],
    "baseline": "paper-st-affine",
    "extra_seeds": {"variants": [], "seeds": []},
}
NO_BUDGET = {"datasets": [], "variants": [], "recipes": []}  # the default budget curve extends Table 1's


@pytest.mark.parametrize(
    ("table1", "message"),
    [
        (
            {"baseline": "paper-cnn-aug"},
            r"studies.table1: .*baseline: 'paper-cnn-aug' is not among the study's",
        ),
        (
            {"extra_seeds": {"variants": ["paper-cnn"], "seeds": [3]}},
            r"extra_seeds: the baseline 'paper-st-affine' must be among its variants",
        ),
        ({"extra_seeds": {"variants": ["paper-st-affine"], "seeds": [1]}}, r"seeds \[1\] are already"),
        ({"datasets": ["mnist"]}, r"studies.table1.datasets: 'mnist' has no distortion"),
        ({"recipes": ["sgd-lr0_01-e9", "adamw-lr0_01-e9"]}, r"Table 1 uses one recipe for every run"),
    ],
)
def test_bad_paper_protocol_studies_are_refused(table1: dict, message: str) -> None:
    params = copy.deepcopy(DEFAULT)
    params["studies"]["table1"] = {**TABLE1, **table1}
    params["studies"]["budget"] = NO_BUDGET
    with pytest.raises(ParamsError, match=message):
        parse_params(params)


def test_a_paper_protocol_study_states_its_extra_seeds() -> None:
    params = copy.deepcopy(DEFAULT)
    params["studies"]["table1"] = dict(TABLE1)
    params["studies"]["budget"] = NO_BUDGET
    assert parse_params(params).studies.table1.baseline == "paper-st-affine"
    del params["studies"]["table1"]["extra_seeds"]
    with pytest.raises(ParamsError, match=r"studies.table1: .*extra_seeds: required"):
        parse_params(params)


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            {"recipes": ["sgd-lr0_01-e9"]},
            r"'sgd-lr0_01-e9' differs from Table 1's recipe .* in more than its epochs",
        ),
        ({"recipes": ["adamw-lr0_01-e27"]}, r"trains 27 epochs, as 'adamw-lr0_01-e27' does"),
        ({"variants": ["paper-st-affine", "stn-conv"]}, r"studies.budget.variants: \['stn-conv'\] not among"),
        (
            {"extra_seeds": {"variants": ["paper-st-affine"], "seeds": [7]}},
            r"studies.budget: .*extra_seeds: only the distorted study and Table 1 have them",
        ),
    ],
)
def test_a_budget_curve_is_table1s_recipe_with_other_epochs(budget: dict, message: str) -> None:
    params = copy.deepcopy(DEFAULT)
    params["studies"]["budget"].update(budget)
    with pytest.raises(ParamsError, match=message):
        parse_params(params)
    params["studies"]["table1"] = {**TABLE1, "datasets": [], "variants": [], "recipes": []}
    params["studies"]["budget"] = copy.deepcopy(DEFAULT["studies"]["budget"])
    with pytest.raises(ParamsError, match=r"extends Table 1, which is empty"):
        parse_params(params)


def test_the_search_needs_a_validation_split() -> None:
    params = copy.deepcopy(DEFAULT)
    params["datasets"]["rot"]["validation"] = 0
    with pytest.raises(ParamsError, match=r"studies.search.datasets: 'rot' has no validation split"):
        parse_params(params)
