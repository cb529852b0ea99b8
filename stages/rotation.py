"""Stage rotation-GROUP@DATASET-VARIANT: each seed's accuracy on the upright test set rotated 0..180 deg."""

import sys

import torch

from stn.analysis.evaluate import rotation_curve
from stn.atomic import write_with
from stn.datasets.store import load_arrays, read_meta
from stn.entry import run_main
from stn.errors import ParamsError
from stn.layout import RAW_MNIST, dataset_dir
from stn.models.builder import load_model
from stn.params.run import load_run_params, load_stage_seeds
from stn.run_paths import StagePaths


def main() -> None:
    group, dataset, variant = sys.argv[1], sys.argv[2], sys.argv[3]
    params = load_run_params()
    settings = params.evaluate
    torch.set_num_threads(params.train.threads)  # the same reduction order on every machine
    meta = read_meta(dataset_dir(dataset))
    upright, labels = load_arrays(RAW_MNIST, "test")
    if meta.size != upright.shape[1:]:
        raise ParamsError(
            f"rotation_curve: dataset {dataset!r} holds {meta.size[0]}x{meta.size[1]} images; "
            f"its models cannot read the {upright.shape[1]}x{upright.shape[2]} upright test digits"
        )
    for seed in load_stage_seeds(group):
        paths = StagePaths(group, dataset, variant).run(seed)
        model = load_model(paths.model)
        curve = rotation_curve(
            model, upright, labels, meta.normalization, settings.rotation_curve.step, settings.batch_size
        )
        write_with(
            paths.rotation, lambda tmp, curve=curve: curve.to_csv(tmp, index=False, float_format="%.6g")
        )
        worst = curve.loc[curve["accuracy"].idxmin()]
        low = f"{100 * worst.accuracy:.2f}% at {worst.angle:g} deg"
        print(f"{paths.name}: rotation curve, lowest accuracy {low}")


if __name__ == "__main__":
    run_main(main)
