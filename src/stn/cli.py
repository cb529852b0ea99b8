"""`stn`: train and test one model, with the original study's flags.

    stn --layer coordconv --function leakyrelu --epochs 50
    stn --dataset rot --epochs 10

prints the per-class accuracy table and the average loss / accuracy line, and writes
imgs/stn.png and imgs/cm.png. The full study is the DVC pipeline (`dvc repro`).

The dataset's spec (distortion, seed, validation split, normalisation, training budget)
comes from the `datasets` section of ./params.yaml when there is one, else from the
defaults below (upright MNIST only, as the original study). The flags given override the
dataset's training budget.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stn.analysis.evaluate import confusion, predict, predictions_table, summarize
from stn.analysis.plotting import save_figure
from stn.analysis.run_figures import confusion_figure, stn_figure
from stn.datasets.mnist import MIRROR_ENV, prepare_mnist
from stn.datasets.normalization import Normalization
from stn.datasets.prepare import prepare_dataset
from stn.datasets.store import load_arrays, read_meta
from stn.entry import run_main
from stn.errors import DataError, ParamsError
from stn.params.study import DatasetSpec, NormalizationParams, TrainParams, load_params
from stn.run_paths import CHECKPOINT_DIR
from stn.training.loop import Trainer
from stn.variant import VariantSpec

PARAMS_FILE = Path("params.yaml")
# Without a params.yaml: upright MNIST as the original study trained it (all 60000 training
# images, the tutorial's normalisation constants), the only dataset the command knows then.
DEFAULT_DATASETS = {
    "mnist": DatasetSpec(validation=0, normalization=NormalizationParams(mean=0.1307, std=0.3081)),
}
DEFAULT_COUNTS = {"train": 60000, "test": 10000}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stn", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layer",
        choices=["conv", "coordconv"],
        default="conv",
        help="conv layers of the STN's localization net (default conv)",
    )
    parser.add_argument(
        "--function",
        choices=["relu", "leakyrelu"],
        default="relu",
        help="activation of the localization net (default relu)",
    )
    parser.add_argument(
        "--negative-slope", type=float, default=0.01, help="Leaky ReLU negative slope (default 0.01)"
    )
    parser.add_argument("--no-stn", action="store_true", help="train the plain CNN control")
    parser.add_argument(
        "--dataset",
        default="mnist",
        help="dataset to train and test on: a name from the datasets section of ./params.yaml, "
        "or mnist without one (default mnist)",
    )
    budget = "default: the dataset's training budget"
    parser.add_argument("--epochs", type=int, help=f"{budget} (50 for mnist)")
    parser.add_argument("--batch-size", type=int, help=f"{budget} (64)")
    parser.add_argument("--lr", type=float, help=f"{budget} (0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads (default: train.threads, 1)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="holds raw/mnist and the prepared datasets, as in the pipeline (default data); "
        f"fetched and prepared there if missing ({MIRROR_ENV} picks the source)",
    )
    parser.add_argument(
        "--train-count", type=int, help="expected training images (default: mnist.train_count, 60000)"
    )
    parser.add_argument(
        "--test-count", type=int, help="expected test images (default: mnist.test_count, 10000)"
    )
    parser.add_argument("--out", type=Path, default=Path("imgs"), help="folder for stn.png and cm.png")
    return parser


def dataset_settings(name: str) -> tuple[DatasetSpec, TrainParams, dict[str, int]]:
    """The dataset's spec, its training budget and the expected MNIST counts."""
    if PARAMS_FILE.is_file():
        params = load_params(PARAMS_FILE)
        counts = {"train": params.mnist.train_count, "test": params.mnist.test_count}
        return params.dataset(name), params.train_for(name), counts
    if name not in DEFAULT_DATASETS:
        raise ParamsError(
            f"--dataset {name}: no {PARAMS_FILE} in {Path.cwd()}, and without one the only dataset is "
            f"{', '.join(DEFAULT_DATASETS)}; run from the project root to use its datasets"
        )
    spec = DEFAULT_DATASETS[name]
    return spec, TrainParams().model_copy(update=spec.train.model_dump(exclude_none=True)), DEFAULT_COUNTS


def _spec_and_params(args: argparse.Namespace, budget: TrainParams) -> tuple[VariantSpec, TrainParams]:
    from pydantic import ValidationError

    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "threads": args.threads}
    try:
        stn_settings = {
            "layer": args.layer,
            "activation": args.function,
            "negative_slope": args.negative_slope,
        }
        spec = VariantSpec(stn=False) if args.no_stn else VariantSpec(stn=True, **stn_settings)
        given = {key: value for key, value in flags.items() if value is not None}
        params = TrainParams(**(budget.model_dump() | given))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ParamsError(f"invalid option: {problems}") from None
    if args.seed < 0:
        raise ParamsError(f"--seed must be a non-negative integer, got {args.seed}")
    return spec, params


def _mismatches(meta_raw: dict, spec: DatasetSpec) -> list[str]:
    """How a prepared dataset differs from the spec it should have been prepared with."""
    wanted = {
        "distortion": spec.distortion.model_dump() if spec.distortion is not None else None,
        "seed": spec.seed,
        "validation": spec.validation,
    }
    found = {
        "distortion": meta_raw.get("distortion"),
        "seed": meta_raw.get("seed"),
        "validation": meta_raw.get("counts", {}).get("val"),
    }
    if spec.normalization is not None:
        wanted["normalization"] = spec.normalization.model_dump()
        found["normalization"] = meta_raw.get("normalization")
    return [f"{key} {found[key]} instead of {wanted[key]}" for key in wanted if found[key] != wanted[key]]


def ensure_dataset(data_dir: Path, name: str, spec: DatasetSpec, counts: dict[str, int]) -> Path:
    """data_dir/raw/mnist and data_dir/NAME, fetched and prepared when missing; returns the latter."""
    raw_dir, folder = data_dir / "raw" / "mnist", data_dir / name  # stn.layout's paths, under data_dir
    if not (raw_dir / "provenance.json").is_file():
        prepare_mnist(raw_dir, counts, os.environ.get(MIRROR_ENV) or None)
    if not (folder / "meta.json").is_file():
        norm = Normalization(**spec.normalization.model_dump()) if spec.normalization else None
        meta = prepare_dataset(name, raw_dir, folder, spec.distortion, spec.seed, spec.validation, norm)
        print(f"prepared {folder}: {meta['counts']} images of {meta['image_size']}", flush=True)
    else:
        differences = _mismatches(read_meta(folder).raw, spec)
        if differences:
            raise DataError(
                f"{folder}: prepared with other settings than dataset {name!r} has now "
                f"({'; '.join(differences)}); remove the folder to prepare it again, "
                "or pass another --data-dir"
            )
    return folder


def per_class_table(metrics: dict) -> str:
    header = "| " + " | ".join(str(c) for c in range(10)) + " |"
    rule = "|" + " :---: |" * 10
    values = "| " + " | ".join(f"{100 * a:.2f}%" for a in metrics["per_class_accuracy"].values()) + " |"
    return "\n".join([header, rule, values])


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def run() -> None:
        dataset_spec, budget, default_counts = dataset_settings(args.dataset)
        spec, params = _spec_and_params(args, budget)
        counts = {
            "train": args.train_count if args.train_count is not None else default_counts["train"],
            "test": args.test_count if args.test_count is not None else default_counts["test"],
        }
        folder = ensure_dataset(args.data_dir, args.dataset, dataset_spec, counts)
        meta = read_meta(folder)
        images, labels = load_arrays(folder, "train")
        name = f"{'cnn' if args.no_stn else 'stn'}-{args.layer}-{args.function}-s{args.seed}"
        run_name = name if args.dataset == "mnist" else f"{args.dataset}/{name}"
        # Same checkpoint scheme as the pipeline: rerunning an interrupted command resumes it.
        checkpoint = CHECKPOINT_DIR / f"cli-{args.dataset}-{name}-e{params.epochs}.pt"
        trainer = Trainer(
            spec,
            params,
            args.seed,
            meta,
            images,
            labels,
            run_name=run_name,
            checkpoint=checkpoint,
            validation=load_arrays(folder, "val"),
        )
        trainer.fit()
        trainer.discard_checkpoint()
        model = trainer.model
        test_images, test_labels = load_arrays(folder, "test")
        predictions = predictions_table(predict(model, test_images, meta.normalization), test_labels)
        metrics = summarize(predictions)
        print("\nPer-class accuracy:")
        print(per_class_table(metrics))
        print(
            f"\nTest set: Average loss: {metrics['loss']:.4f}, Accuracy: "
            f"{metrics['n_correct']}/{metrics['n']} ({100 * metrics['accuracy']:.2f}%)"
        )
        title = f"{run_name}: test accuracy {100 * metrics['accuracy']:.2f}%"
        save_figure(stn_figure(model, test_images[:32], meta.normalization, title), args.out / "stn.png")
        save_figure(confusion_figure(confusion(predictions), title), args.out / "cm.png")
        print(f"wrote {args.out / 'stn.png'} and {args.out / 'cm.png'}")

    run_main(run)
