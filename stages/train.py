"""Stage train@DATASET-VARIANT-SEED: one run, resumable per epoch."""

import sys

from stn.datasets.store import load_arrays
from stn.entry import run_main
from stn.layout import RAW_MNIST, RunPaths, dataset_dir
from stn.models.builder import save_model
from stn.params.run import load_run_params
from stn.training.loop import Trainer, save_history
from stn.training.runs import epoch_images_for, load_training_data


def main() -> None:
    dataset, variant, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    params = load_run_params(dataset, variant)
    spec = params.variant(variant)
    paths = RunPaths(dataset, variant, seed)
    meta, images, labels = load_training_data(dataset_dir(dataset))
    redraw = epoch_images_for(spec, params.dataset(dataset), RAW_MNIST, meta, seed)
    trainer = Trainer(
        spec,
        params.train_for(dataset),
        seed,
        meta,
        images,
        labels,
        run_name=paths.name,
        checkpoint=paths.checkpoint,
        epoch_images=redraw,
        validation=load_arrays(dataset_dir(dataset), "val"),
    )
    history = trainer.fit()
    save_model(trainer.model, paths.model)
    save_history(history, paths.history)
    trainer.discard_checkpoint()


if __name__ == "__main__":
    run_main(main)
