"""Stages data and model: load an experiment's dataset, then train Tiny VGG or import a model.

The model's cache entry holds model.keras (the exact model every later stage uses, imported
ones included, with their input scaling and softmax), model.json (its description and, when
trained, the training record) and, when trained, snapshots.npz (weights after every epoch).
TensorFlow is imported only when there is something to compute.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from generator.cache import code_version, content_key, file_digest
from generator.errors import UserError
from generator.inputs.config import Experiment, section_dict
from generator.inputs.datasets import Dataset, load_embedded, load_idx_dataset
from generator.stages.context import ClassNames, ExperimentRun, muted_stderr


def load_dataset(experiment: Experiment, class_names: list[str] | None) -> Dataset | None:
    """The experiment's training data (None for data.source: none); canonical class names."""
    data = experiment.data
    if data.source == "none":
        return None
    if data.source == "embedded":
        dataset = load_embedded()
        if class_names:
            if len(class_names) != len(dataset.class_names):
                raise UserError(f"{experiment.key('data.class_names')}: the embedded data has "
                                f"{len(dataset.class_names)} classes, {len(class_names)} class names are given")
            dataset.class_names = list(class_names)
        return dataset
    if data.source == "idx":
        return load_idx_dataset(experiment.resolve(data.path), class_names)
    if data.source == "folder":
        from generator.inputs.folder_data import load_folder_dataset
        return load_folder_dataset(experiment.resolve(data.path), None, data.validation_split, data.seed,
                                   class_names=class_names)
    from generator.inputs.download import load_recipe
    dataset = load_recipe(data.recipe, seed=data.seed)
    if class_names:
        dataset.class_names = list(class_names)
    return dataset


def dataset_record(dataset: Dataset) -> dict:
    return {
        "name": dataset.name, "source": dataset.source, "class_names": dataset.class_names,
        "input_shape": list(dataset.input_shape), "train_size": int(len(dataset.x_train)),
        "test_size": int(len(dataset.x_test)), "provenance": dataset.provenance, "licence": dataset.licence,
    }


def stage_data(run: ExperimentRun) -> dict | None:
    """Load the data and settle the class names; returns the manifest's dataset record."""
    experiment, languages = run.experiment, run.build.languages
    data_names = ClassNames.from_config(experiment.data.class_names, languages) if experiment.data.class_names else None
    try:
        run.dataset = load_dataset(experiment, data_names.canonical if data_names else None)
    except UserError as error:
        if f"'{run.id}'" in str(error):
            raise
        raise UserError(f"experiment '{run.id}': {error}") from None
    if experiment.model.class_names:
        run.classes = ClassNames.from_config(experiment.model.class_names, languages)
    elif data_names:
        run.classes = data_names
    else:
        names = list(run.dataset.class_names)
        run.classes = ClassNames(names, {lang: names for lang in languages})
    return dataset_record(run.dataset) if run.dataset is not None else None


def stage_model(run: ExperimentRun) -> dict:
    """Train (or reuse) or import the model; returns the manifest's model record."""
    experiment = run.experiment
    if experiment.model.source == "file":
        path = experiment.resolve(experiment.model.path)
        files = sorted(path.parent.glob("*.bin")) + [path] if path.suffix == ".json" else [path]
        key = content_key("imported", [file_digest(f) for f in files], run.classes.canonical,
                          experiment.model.input_range, code_version("inputs/model_import"), metadata.version("keras"))
        compute = lambda out: import_model(run, path, out)  # noqa: E731
    else:
        from generator.analysis.training import check_fits

        problem = check_fits(run.dataset.input_shape, experiment.model.blocks)
        if problem:
            raise UserError(f"{experiment.key('model.blocks')}: {problem}")
        # The probe image only chooses what the training animation follows: it is not part of training.
        training = {k: v for k, v in section_dict(experiment.training).items() if k != "probe_image"}
        key = content_key("model", section_dict(experiment.model), training,
                          run.dataset.fingerprint(), code_version("analysis/training"), metadata.version("keras"))
        compute = lambda out: train_model(run, out)  # noqa: E731
    run.model_key, run.model_dir = key, run.build.cache.path("model", key)
    if run.build.cache.has("model", key):
        run.cache_status["model"] = "hit"
        run.log(f"[model] unchanged: reusing {run.build.relative(run.model_dir)}")
    else:
        run.cache_status["model"] = "miss"
        if run.build.drawings is not None:
            run.build.drawings.start()  # a new model: every image will be drawn
        with run.build.cache.write("model", key) as out:
            compute(out)
    if run._model is None:
        model_file = run.model_dir / "model.keras"
        run.model_loader = lambda: load_saved(model_file)
    info = json.loads((run.model_dir / "model.json").read_text())
    info["class_names"] = run.classes.canonical
    info["class_labels"] = run.classes.by_language
    return info


def save_model(model, path: Path) -> None:
    """``model.save(path)``, the same model always giving the same bytes. Keras stamps the
    archive with the time of saving (metadata.json's date_saved, the weights' member date) and
    names each shared object (a layer's dtype policy) by its memory address; here the member
    dates are those Keras gives the others, the date is left out and shared objects are numbered
    in order. Keras loads the file as before."""
    import re
    import zipfile

    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    metadata_json = json.loads(members["metadata.json"])
    metadata_json.pop("date_saved", None)
    members["metadata.json"] = json.dumps(metadata_json).encode()
    numbers: dict[bytes, str] = {}
    members["config.json"] = re.sub(
        rb'"shared_object_id": (\d+)',
        lambda found: b'"shared_object_id": ' + numbers.setdefault(found[1], str(len(numbers) + 1)).encode(),
        members["config.json"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)


def load_saved(path: Path):
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


def import_model(run: ExperimentRun, path: Path, out: Path) -> None:
    """Load a model trained elsewhere, fit it to the pipeline, and save it as model.keras."""
    from generator.inputs.model_import import describe_model, load_model

    experiment = run.experiment
    with run.build.quiet_tensorflow():
        model = load_model(path, run.classes.canonical, tuple(experiment.model.input_range))
    save_model(model, out / "model.keras")
    # A TF.js or Keras file often names its model just "sequential"; its folder or file name says more.
    name = path.parent.name if path.suffix == ".json" else path.stem
    info = {"source": "imported", "file": run.build.relative(path), "architecture": name,
            "parameters": int(model.count_params()), "layers": describe_model(model), "training": None,
            "input_shape": [int(d) for d in model.input_shape[1:]]}
    (out / "model.json").write_text(json.dumps(info, indent=1))


def train_model(run: ExperimentRun, out: Path) -> None:
    """Train Tiny VGG into ``out``: model.keras, snapshots.npz (weights per epoch), model.json."""
    from generator.analysis.training import build_tiny_vgg, train
    from generator.inputs.model_import import describe_model

    experiment, dataset = run.experiment, run.dataset
    t = experiment.training
    run.log(f"[model] training Tiny VGG on {len(dataset.x_train):,} images for {t.epochs} epochs")
    with run.build.quiet_tensorflow(), muted_stderr(run.build.verbose):
        model = build_tiny_vgg(dataset.input_shape, len(dataset.class_names), blocks=experiment.model.blocks,
                               filters=experiment.model.filters, seed=t.seed)
        # Keras writes its progress to stdout, which stays visible.
        result = train(model, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, epochs=t.epochs,
                       batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed,
                       verbose=1 if sys.stdout.isatty() else 2)
    run._model = model
    save_model(model, out / "model.keras")
    np.savez_compressed(out / "snapshots.npz", **{
        f"epoch_{e + 1:03d}/{i}": w for e, weights in enumerate(result.snapshots) for i, w in enumerate(weights)})
    info = {
        "source": "trained", "file": None, "architecture": "tiny_vgg",
        "parameters": int(model.count_params()), "layers": describe_model(model),
        "input_shape": list(dataset.input_shape),
        "training": {
            "epochs": t.epochs, "batch_size": t.batch_size, "learning_rate": t.learning_rate,
            "history": result.history, "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            "test_size": int(len(dataset.x_test)),
        },
    }
    (out / "model.json").write_text(json.dumps(info, indent=1))
    (out / "seconds.txt").write_text(f"{result.seconds:.2f}\n")
