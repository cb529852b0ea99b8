"""Stage rotation@DATASET-VARIANT-SEED: test accuracy on the upright test set rotated 0..180 degrees."""

import sys

import torch

from stn.analysis.evaluate import rotation_curve
from stn.atomic import write_with
from stn.datasets.store import load_arrays, read_meta
from stn.entry import run_main
from stn.errors import ParamsError
from stn.layout import RAW_MNIST, RunPaths, dataset_dir
from stn.models.builder import load_model
from stn.params.run import load_run_params


def main() -> None:
    dataset, variant, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    params = load_run_params()
    settings = params.evaluate
    torch.set_num_threads(params.train.threads)  # the same reduction order on every machine
    paths = RunPaths(dataset, variant, seed)
    meta = read_meta(dataset_dir(dataset))
    upright, labels = load_arrays(RAW_MNIST, "test")
    if meta.size != upright.shape[1:]:
        raise ParamsError(
            f"rotation_curve: dataset {dataset!r} holds {meta.size[0]}x{meta.size[1]} images; "
            f"its models cannot read the {upright.shape[1]}x{upright.shape[2]} upright test digits"
        )
    model = load_model(paths.model)
    curve = rotation_curve(
        model, upright, labels, meta.normalization, settings.rotation_curve.step, settings.batch_size
    )
    write_with(paths.rotation, lambda tmp: curve.to_csv(tmp, index=False, float_format="%.6g"))
    worst = curve.loc[curve["accuracy"].idxmin()]
    print(f"{paths.name}: rotation curve, lowest accuracy {100 * worst.accuracy:.2f}% at {worst.angle:g} deg")


if __name__ == "__main__":
    run_main(main)
