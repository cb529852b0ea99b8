"""Stage evaluate@VARIANT-SEED: test-set metrics, predictions, stn.png and cm.png."""

import sys

import torch

from stn.atomic import write_json
from stn.data import load_split
from stn.entry import run_main
from stn.evaluate import confusion, predict, predictions_table, save_predictions, summarize
from stn.figures import confusion_figure, save_figure, stn_figure
from stn.layout import DATA_DIR, RunPaths
from stn.model import load_model
from stn.params import load_params


def main() -> None:
    variant, seed = sys.argv[1], int(sys.argv[2])
    params = load_params()
    torch.set_num_threads(params.train.threads)  # the same reduction order on every machine
    paths = RunPaths(variant, seed)
    model = load_model(paths.model)
    images, labels = load_split(DATA_DIR, "test")
    predictions = predictions_table(predict(model, images, params.evaluate.batch_size), labels)
    metrics = summarize(predictions)
    save_predictions(predictions, paths.predictions)
    write_json(paths.metrics, metrics)
    title = f"{paths.name}: test accuracy {100 * metrics['accuracy']:.2f}%"
    save_figure(stn_figure(model, images[: params.evaluate.stn_images], title), paths.images / "stn.png")
    save_figure(confusion_figure(confusion(predictions), title), paths.images / "cm.png")
    print(f"{paths.name}: accuracy {100 * metrics['accuracy']:.2f}%, loss {metrics['loss']:.4f}")


if __name__ == "__main__":
    run_main(main)
