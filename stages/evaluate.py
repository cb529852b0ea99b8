"""Stage evaluate-GROUP@DATASET-VARIANT: test-set metrics, predictions and pictures of every seed."""

import sys

import torch

from stn.analysis.evaluate import (
    confusion,
    predict,
    predictions_table,
    save_predictions,
    summarize,
)
from stn.analysis.plotting import save_figure
from stn.analysis.run_figures import confusion_figure, stn_figure
from stn.atomic import write_json
from stn.datasets.store import load_arrays, read_meta
from stn.entry import run_main
from stn.layout import dataset_dir
from stn.models.builder import count_parameters, load_model
from stn.params.run import load_run_params, load_stage_seeds
from stn.run_paths import StagePaths


def main() -> None:
    group, dataset, variant = sys.argv[1], sys.argv[2], sys.argv[3]
    params = load_run_params()
    settings = params.evaluate
    torch.set_num_threads(params.train.threads)  # the same reduction order on every machine
    meta = read_meta(dataset_dir(dataset))
    images, labels = load_arrays(dataset_dir(dataset), "test")
    for seed in load_stage_seeds(group):
        paths = StagePaths(group, dataset, variant).run(seed)
        model = load_model(paths.model)
        log_probs = predict(model, images, meta.normalization, settings.batch_size)
        predictions = predictions_table(log_probs, labels)
        metrics = summarize(predictions) | {"parameters": count_parameters(model)}
        if model.trained_on != "cpu":  # CPU runs' metrics keep their bytes (see save_model)
            metrics["trained_on"] = model.trained_on
        save_predictions(predictions, paths.predictions)
        write_json(paths.metrics, metrics)
        title = f"{paths.name}: test accuracy {100 * metrics['accuracy']:.2f}%"
        shown = images[: settings.stn_images]
        save_figure(stn_figure(model, shown, meta.normalization, title), paths.images / "stn.png")
        save_figure(confusion_figure(confusion(predictions), title), paths.images / "cm.png")
        print(f"{paths.name}: accuracy {100 * metrics['accuracy']:.2f}%, loss {metrics['loss']:.4f}")


if __name__ == "__main__":
    run_main(main)
