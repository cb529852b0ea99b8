"""Stage train-STUDY@DATASET-VARIANT[-RECIPE]: every seed of one run, each resumable per epoch.

GROUP is STUDY, STUDY-extra, or STUDY/RECIPE for a study that names its training recipes.
"""

import sys

from stn.datasets.store import load_arrays
from stn.entry import run_main
from stn.layout import RAW_MNIST, dataset_dir
from stn.models.builder import save_model
from stn.params.run import load_run_params, load_stage_seeds, split_group
from stn.run_paths import StagePaths
from stn.training.loop import Trainer, save_history
from stn.training.runs import epoch_images_for, load_training_data


def main() -> None:
    group, dataset, variant = sys.argv[1], sys.argv[2], sys.argv[3]
    recipe = split_group(group)[1]
    params = load_run_params(dataset, variant, recipe=recipe)
    spec = params.variant(variant)
    runs = [StagePaths(group, dataset, variant).run(seed) for seed in load_stage_seeds(group)]
    meta, images, labels = load_training_data(dataset_dir(dataset))
    validation = load_arrays(dataset_dir(dataset), "val")
    for paths in runs:  # one after another: each run is the same as trained on its own
        trainer = Trainer(
            spec,
            params.train_for(dataset, recipe),
            paths.seed,
            meta,
            images,
            labels,
            run_name=paths.name,
            checkpoint=paths.checkpoint,
            epoch_images=epoch_images_for(spec, params.dataset(dataset), RAW_MNIST, meta, paths.seed),
            validation=validation,
        )
        history = trainer.fit()
        save_model(trainer.model, paths.model, trained_on=trainer.trained_on)
        save_history(history, paths.history, trained_on=trainer.trained_on)
    # Only now: a stage interrupted in a later seed resumes each finished seed at its last epoch.
    for paths in runs:
        paths.checkpoint.unlink(missing_ok=True)


if __name__ == "__main__":
    run_main(main)
