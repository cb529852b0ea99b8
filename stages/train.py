"""Stage train-STUDY@DATASET-VARIANT[-RECIPE]: every seed of one run, each resumable per epoch.

GROUP is STUDY, STUDY-extra, or STUDY/RECIPE for a study that names its training recipes.
"""

import sys

from stn.datasets.store import load_arrays
from stn.entry import run_main
from stn.layout import RAW_MNIST, dataset_dir
from stn.models.builder import save_model
from stn.params.run import load_run_params, load_stage_seeds, split_group
from stn.run_paths import RunPaths, StagePaths
from stn.training.loop import Trainer, save_history, select_device
from stn.training.runs import epoch_images_for, load_training_data
from stn.training.stacked import StackedTrainer, stack_seeds


def main() -> None:
    group, dataset, variant = sys.argv[1], sys.argv[2], sys.argv[3]
    recipe = split_group(group)[1]
    params = load_run_params(dataset, variant, recipe=recipe)
    spec = params.variant(variant)
    train = params.train_for(dataset, recipe)
    stage = StagePaths(group, dataset, variant)
    runs = [stage.run(seed) for seed in load_stage_seeds(group)]
    meta, images, labels = load_training_data(dataset_dir(dataset))
    validation = load_arrays(dataset_dir(dataset), "val")

    def trainer(paths: RunPaths) -> Trainer:  # builds the model: torch.manual_seed(seed)
        return Trainer(
            spec,
            train,
            paths.seed,
            meta,
            images,
            labels,
            run_name=paths.name,
            checkpoint=paths.checkpoint,
            epoch_images=epoch_images_for(spec, params.dataset(dataset), RAW_MNIST, meta, paths.seed),
            validation=validation,
        )

    def save(done: Trainer, paths: RunPaths) -> None:
        save_model(done.model, paths.model, trained_on=done.trained_on)
        save_history(done.history, paths.history, trained_on=done.trained_on)

    device = select_device(train.device)
    seed_checkpoints = any(paths.checkpoint.is_file() for paths in runs)
    if stack_seeds(device, len(runs), stage.stacked_checkpoint.is_file(), seed_checkpoints):
        trainers = [trainer(paths) for paths in runs]  # all seeds as one model
        StackedTrainer(trainers, checkpoint=stage.stacked_checkpoint).fit()
        for paths, done in zip(runs, trainers, strict=True):
            save(done, paths)
    else:
        for paths in runs:  # one after another: each run is the same as trained on its own
            done = trainer(paths)
            done.fit()
            save(done, paths)
    # Only now, every seed saved: a stage interrupted earlier resumes each seed at its last epoch.
    for paths in runs:
        paths.checkpoint.unlink(missing_ok=True)
    stage.stacked_checkpoint.unlink(missing_ok=True)


if __name__ == "__main__":
    run_main(main)
