"""Using the winner: `sweep export` (TorchScript, ONNX), `sweep predict` and `sweep train --from`.

Everything runs on a network really trained by `train()` on the tiny CIFAR-10, exported by the real
exporters and run by the real onnxruntime.
"""

from __future__ import annotations

import csv
import functools
import json
import zipfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from agent_helpers import cli, created_id, tiny_sweep
from conftest import PLUMBING_MODEL, write_tiny_cifar
from PIL import Image

from data.cifar import load_cifar10
from store.records import metric_of, rank_runs
from store.open import open_store
from train import TrainConfig, train
from train.checkpoint import read_checkpoint
from train.evaluate import predict
from winner.export import METADATA_FILE, ImageClassifier, build_classifier, export_model
from winner.predict import load_predictor, predict_paths, read_image
from winner.source import load_network, source_from_path

# Learns the tiny task well above chance (tests/test_train.py); TTA level 2 so the exported files
# must carry the mirror+translate views inside them.
TINY = dict(model=PLUMBING_MODEL, batch_size=32, val_size=40, epochs=4, tta=2, precision="fp32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny run, trained for real, with its result.json beside its checkpoint (as `sweep train` writes)."""
    root = tmp_path_factory.mktemp("winner")
    data = load_cifar10(write_tiny_cifar(root / "data"), download=False)
    run_dir = root / "run"
    result = train(TrainConfig.resolve(TINY), data=data, run_dir=run_dir)
    (run_dir / "result.json").write_text(result.model_dump_json())
    return {"root": root, "data": data, "run_dir": run_dir, "result": result}


@pytest.fixture(scope="module")
def exported(trained) -> dict[str, Path]:
    source = source_from_path(trained["run_dir"])
    return {fmt: export_model(source, fmt, trained["root"] / f"model.{suffix}").path
            for fmt, suffix in (("torchscript", "pt"), ("onnx", "onnx"))}


def nhwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).contiguous().numpy()


def checkpoint_probabilities(trained) -> torch.Tensor:
    """The checkpoint evaluated the way training evaluates it (train/evaluate.py), as probabilities."""
    network, config = load_network(source_from_path(trained["run_dir"]))
    logits = predict(network, trained["data"].test_images, batch_size=1000, dtype=torch.float32,
                     channels_last=config.channels_last, autocast=nullcontext, tta_level=config.tta)
    return torch.softmax(logits, dim=1)


def write_pngs(folder: Path, images: torch.Tensor, labels: torch.Tensor, classes) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (image, label) in enumerate(zip(nhwc(images), labels.tolist())):
        path = folder / f"{index:05d}_{classes[label]}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def test_both_formats_reproduce_the_checkpoint_evaluated_as_training_does(trained, exported):
    expected = checkpoint_probabilities(trained)
    labels = trained["data"].test_labels
    expected_acc = (expected.argmax(1) == labels).float().mean().item()
    # train() measured the same number at the end of the run.
    assert expected_acc > 0.3  # above chance, so equal accuracies mean something
    assert expected_acc == pytest.approx(trained["result"].test_acc_tta, abs=1e-6)
    images = nhwc(trained["data"].test_images)
    for fmt, path in exported.items():
        probabilities = load_predictor(path).probabilities(images)
        assert probabilities.shape == (len(labels), 10) and probabilities.dtype == np.float32
        assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5), fmt
        assert np.abs(probabilities - expected.numpy()).max() < 1e-5, fmt
        accuracy = float((probabilities.argmax(1) == labels.numpy()).mean())
        assert accuracy == pytest.approx(expected_acc, abs=1e-6), fmt


def test_confident_tta_inside_the_model_matches_training_evaluation(trained):
    """tta_confidence < 1: views only for unsure images, as train/evaluate.py does it, in traceable form."""
    network, config = load_network(source_from_path(trained["run_dir"]))
    images = trained["data"].test_images
    evaluate = functools.partial(predict, network, images, batch_size=1000, dtype=torch.float32,
                                 channels_last=True, autocast=nullcontext)
    confidence = evaluate(tta_level=0).softmax(1).amax(1)
    # Halfway between the least and the most confident image, so that both branches are exercised
    # however sure the tiny trained network happens to be.
    threshold = float(confidence.min() + confidence.max()) / 2
    assert 0 < (confidence >= threshold).sum() < len(images)
    logits = evaluate(tta_level=2, tta_confidence=threshold)
    classifier = ImageClassifier(network, 2, threshold, channels_last=True).eval()
    with torch.no_grad():
        traced = torch.jit.trace(classifier, torch.from_numpy(nhwc(images[:4])))
        for model in (classifier, traced):
            probabilities = model(torch.from_numpy(nhwc(images)))
            assert (probabilities - logits.softmax(1)).abs().max() < 1e-5


def test_the_four_shift_tta_inside_the_model_is_training_evaluations(trained):
    """tta=3 chosen at export: the classifier computes what evaluation at level 3 computes (tracing
    and saving are the same for every level; the tests above cover them at the run's level)."""
    source = source_from_path(trained["run_dir"])
    classifier, metadata = build_classifier(source, tta=3)
    assert metadata["tta"] == 3 and "four diagonal" in metadata["tta_views"]
    assert metadata["expected_test_acc"] is None  # the run measured level 2, not this one
    images = trained["data"].test_images
    evaluate = functools.partial(predict, classifier.network, images, batch_size=1000, dtype=torch.float32,
                                 channels_last=classifier.channels_last, autocast=nullcontext)
    level_3, level_2 = evaluate(tta_level=3).softmax(1), evaluate(tta_level=2).softmax(1)
    assert (level_3 - level_2).abs().max() > 1e-6  # four more views, so other numbers
    with torch.no_grad():
        assert (classifier(torch.from_numpy(nhwc(images))) - level_3).abs().max() < 1e-5


def test_a_checkpoint_of_an_earlier_version_still_loads(trained, tmp_path):
    """Run folders written before checksummed checkpoints hold one plain torch.save file, checkpoint.pt."""
    payload = read_checkpoint(Path(trained["result"].checkpoint))
    legacy = tmp_path / "old-run"
    legacy.mkdir()
    torch.save({"config": payload["config"], "model": payload["model"], "progress": payload["progress"]},
               legacy / "checkpoint.pt")
    images = nhwc(trained["data"].test_images)
    old, new = load_predictor(legacy), load_predictor(trained["run_dir"])
    assert old.info.kind == "checkpoint"
    assert np.abs(old.probabilities(images) - new.probabilities(images)).max() == 0


def test_onnxruntime_agrees_with_torch_on_the_same_uint8_images_at_any_batch_size(trained, exported):
    torchscript, onnx_model = load_predictor(exported["torchscript"]), load_predictor(exported["onnx"])
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    for batch in (nhwc(trained["data"].test_images), noise, noise[:1]):
        difference = np.abs(torchscript.probabilities(batch) - onnx_model.probabilities(batch)).max()
        assert difference < 1e-4
    assert onnx_model.session.get_inputs()[0].type == "tensor(uint8)"
    assert onnx_model.session.get_inputs()[0].shape[1:] == [32, 32, 3]


def test_metadata_travels_in_both_files_and_beside_them(trained, exported):
    result = trained["result"]
    onnx_proto = onnx.load_model(str(exported["onnx"]))
    onnx.checker.check_model(onnx_proto, full_check=True)
    from_onnx = {entry.key: json.loads(entry.value) for entry in onnx_proto.metadata_props}
    files = {METADATA_FILE: ""}
    torch.jit.load(str(exported["torchscript"]), _extra_files=files)
    from_torchscript = json.loads(files[METADATA_FILE])
    for path, inside in ((exported["onnx"], from_onnx), (exported["torchscript"], from_torchscript)):
        beside = json.loads(path.with_name(path.name + ".json").read_text())
        assert inside == beside
        assert inside["classes"] == list(trained["data"].classes)
        assert inside["params"] == result.params
        assert inside["test_acc"] == result.test_acc and inside["test_acc_tta"] == result.test_acc_tta
        assert inside["expected_test_acc"] == result.test_acc_tta  # the file's TTA is the run's
        assert inside["config"] == result.config and inside["tta"] == 2
        assert inside["input"]["dtype"] == "uint8" and inside["input"]["shape"] == ["batch", 32, 32, 3]
        assert inside["code_version"].startswith("0.1.0")
    assert from_onnx["format"] == "onnx" and from_torchscript["format"] == "torchscript"


def test_predict_on_png_files_matches_the_exported_model_and_reports_bad_files(trained, exported, tmp_path):
    data = trained["data"]
    folder = tmp_path / "images"
    paths = write_pngs(folder, data.test_images, data.test_labels, data.classes)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"skipped")
    images = nhwc(data.test_images)
    for model in (*exported.values(), trained["run_dir"]):
        predictor = load_predictor(model)
        direct = predictor.probabilities(images).argmax(1)
        report = predict_paths(model, [folder], top_k=3, batch_size=16)
        rows = report.predictions
        assert [row.path for row in rows] == sorted(str(p) for p in [*paths, folder / "notes.txt"])
        [bad] = [row for row in rows if row.error]
        assert bad.path.endswith("notes.txt") and "not an image" in bad.error and bad.top is None
        good = [row for row in rows if not row.error]
        assert all(len(row.top) == 3 and row.top[0].probability >= row.top[1].probability for row in good)
        predicted = [data.classes.index(row.top[0].class_name) for row in good]
        assert predicted == direct.tolist()
        truth = [data.classes.index(Path(row.path).stem.split("_", 1)[1]) for row in good]
        assert np.mean(np.array(predicted) == truth) == np.mean(direct == data.test_labels.numpy())


def test_images_of_any_size_and_mode_become_32x32_rgb_and_32x32_ones_stay_exact(tmp_path):
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(exact).save(tmp_path / "exact.png")
    assert np.array_equal(read_image(tmp_path / "exact.png"), exact)
    big = Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))
    big.save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, size=(50, 70, 4), dtype=np.uint8), "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(rng.integers(0, 256, size=(20, 20), dtype=np.uint8), "L").save(tmp_path / "grey.png")
    for name in ("photo.jpg", "alpha.png", "grey.png"):
        image = read_image(tmp_path / name)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8, name
    # Resized as a whole with bicubic filtering: a flat colour stays that colour.
    Image.new("RGB", (300, 120), (200, 40, 10)).save(tmp_path / "flat.png")
    assert np.array_equal(read_image(tmp_path / "flat.png"), np.broadcast_to([200, 40, 10], (32, 32, 3)))


def test_predict_json_and_csv_output_and_exit_codes(trained, exported, tmp_path):
    data = trained["data"]
    [good] = write_pngs(tmp_path / "one", data.test_images[:1], data.test_labels[:1], data.classes)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    missing = tmp_path / "missing.png"
    out_csv = tmp_path / "out" / "predictions.csv"
    result = cli("predict", str(exported["onnx"]), str(good), str(broken), str(missing), "--top-k", "2",
                 "--json", "--csv", str(out_csv))
    assert result.exit_code == 1  # some files could not be classified; every row was still printed
    rows = json.loads(result.stdout)
    assert [row["path"] for row in rows] == [str(good), str(broken), str(missing)]
    assert set(rows[0]) == {"path", "top"} and len(rows[0]["top"]) == 2
    assert set(rows[0]["top"][0]) == {"class", "probability"} and rows[0]["top"][0]["class"] in data.classes
    assert set(rows[1]) == {"path", "error"} and set(rows[2]) == {"path", "error"}
    assert rows[2]["error"] == "no such file"
    with out_csv.open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["path"] for row in table] == [str(good), str(broken), str(missing)]
    assert table[0]["class_1"] == rows[0]["top"][0]["class"] and table[1]["error"] == rows[1]["error"]

    only_good = cli("predict", str(exported["torchscript"]), str(good), "--json")
    assert only_good.exit_code == 0 and json.loads(only_good.stdout)[0]["top"][0] == rows[0]["top"][0] | {
        "probability": pytest.approx(rows[0]["top"][0]["probability"], abs=1e-4)}


@pytest.mark.parametrize("make", ["missing", "text", "zip", "directory"])
def test_a_missing_or_foreign_model_is_one_line_and_exit_2(tmp_path, make):
    model = tmp_path / "model.onnx"
    if make == "text":
        model.write_text("hello")
    elif make == "zip":
        model = tmp_path / "model.pt"
        with zipfile.ZipFile(model, "w") as archive:
            archive.writestr("readme.txt", "not a model")
    elif make == "directory":
        model = tmp_path / "empty"
        model.mkdir()
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(image)
    result = cli("predict", str(model), str(image))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and str(model) in result.stderr and "Traceback" not in result.stderr


def test_export_errors_leave_nothing_behind(trained, tmp_path):
    out = tmp_path / "out"
    bad_format = cli("export", str(trained["run_dir"]), "--out", str(out / "m.onnx"), "--format", "tflite")
    assert bad_format.exit_code == 2 and "--format 'tflite'" in bad_format.stderr
    damaged = tmp_path / "damaged" / "checkpoint-0004.pt"
    damaged.parent.mkdir()
    damaged.write_bytes(Path(trained["result"].checkpoint).read_bytes()[:5000])
    result = cli("export", str(damaged), "--out", str(out / "m.pt"))
    assert result.exit_code == 2 and str(damaged) in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists() or list(out.iterdir()) == []
    unknown = cli("export", "nosuchrun", "--out", str(out / "m.pt"), "--home", str(tmp_path / "home"))
    assert unknown.exit_code == 2 and unknown.stderr.count("\n") == 1


def test_train_from_a_run_and_from_a_sweep_uses_that_config_plus_set(tmp_path, tiny_data_dir, monkeypatch):
    for name in ("SWEEP_HOME", "SWEEP_STORE", "SWEEP_TRAIN_FN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.02, 0.3]}), home)
    ran = cli("agent", sweep_id, "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert ran.exit_code == 0, ran.stderr
    store = open_store(home=home)
    sweep, runs = store.get_sweep(sweep_id), store.list_runs(sweep_id)
    best = rank_runs(runs, *metric_of(sweep))[0][0]
    other = next(run for run in runs if run.id != best.id)

    out = tmp_path / "from-run.json"
    result = cli("train", "--from", other.id, "--set", "val_size=0", "--set", "epochs=1", "--data-dir",
                 str(tiny_data_dir), "--home", str(home), "--json-out", str(out))
    assert result.exit_code == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["derived_from"] == {"sweep": sweep_id, "run": other.id}
    assert written["config"] == {**other.summary["config"], "val_size": 0, "epochs": 1.0}
    assert written["history"][-1]["val_acc"] is None  # trained on every training image

    out = tmp_path / "from-sweep.json"
    result = cli("train", "--from", sweep_id, "--set", "seed=5", "--data-dir", str(tiny_data_dir),
                 "--home", str(home), "--json-out", str(out), "--run-dir", str(tmp_path / "retrained"))
    assert result.exit_code == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["derived_from"] == {"sweep": sweep_id, "run": best.id}
    assert written["config"] == {**best.summary["config"], "seed": 5}

    # The sweep's winner exported straight from the store, and the retrained one from its folder.
    from_store = cli("export", sweep_id, "--out", str(tmp_path / "winner.pt"), "--home", str(home), "--json")
    assert from_store.exit_code == 0, from_store.stderr
    meta = json.loads(from_store.stdout)["metadata"]
    assert meta["source"]["run"] == best.id and meta["test_acc"] == best.summary["test_acc"]
    assert json.loads((tmp_path / "retrained" / "result.json").read_text()) == written  # beside its checkpoints
    retrained = cli("export", str(tmp_path / "retrained"), "--out", str(tmp_path / "final.pt"), "--json")
    assert retrained.exit_code == 0, retrained.stderr
    meta = json.loads(retrained.stdout)["metadata"]
    assert meta["derived_from"] == {"sweep": sweep_id, "run": best.id} and meta["config"]["seed"] == 5
    assert meta["test_acc"] == written["test_acc"] and meta["source"]["run"] is None

    missing = cli("train", "--from", "nosuch", "--home", str(home), "--data-dir", str(tiny_data_dir))
    assert missing.exit_code == 2 and "nosuch" in missing.stderr and missing.stderr.count("\n") == 1
