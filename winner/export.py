"""`sweep export`: a trained network as one self-contained file, TorchScript or ONNX.

The file takes images as a user has them, uint8 RGB in (N, 32, 32, 3), and returns class
probabilities (N, 10). Inside it does exactly what evaluation did during training: the same
normalisation (`data.normalization.normalize`) and the run's test-time augmentation
(`train.evaluate.tta_logits`), so its accuracy is the run's measured test accuracy. What a user
needs to know about the model travels in the file (TorchScript `_extra_files`, ONNX
`metadata_props`) and beside it in `<file>.json`.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from data.normalization import CIFAR10_MEAN, CIFAR10_STD, normalize
from model.layers import count_parameters
from train.evaluate import tta_logits
from winner.errors import WinnerError
from winner.source import ModelSource, StoreFactory, load_network, resolve_source

Format = Literal["torchscript", "onnx"]
FORMATS: tuple[str, ...] = ("torchscript", "onnx")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
IMAGE_SIDE = 32
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
METADATA_FILE = "metadata.json"  # the TorchScript archive's extra file
ONNX_OPSET = 18
CHECK_TOLERANCE = 1e-4  # largest difference allowed between the saved file's outputs and the network's
TTA_VIEWS = {0: "the image only", 1: "the image and its mirror, averaged",
             2: "the image and its one-pixel up-left and down-right shifts (weights 1/2, 1/4, 1/4), each "
                "averaged with its mirror",
             3: "the image and its four diagonal one-pixel shifts (weights 1/2, then 1/8 each), each averaged "
                "with its mirror"}


class ImageClassifier(nn.Module):
    """uint8 RGB images (N, 32, 32, 3) -> class probabilities (N, classes), preprocessing inside."""

    def __init__(self, network: nn.Module, tta: int, tta_confidence: float = 1.0, channels_last: bool = False):
        super().__init__()
        self.network = network
        self.tta = tta
        self.tta_confidence = tta_confidence
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = normalize(images.permute(0, 3, 1, 2))  # the very function training's evaluation used
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.tta == 0 or self.tta_confidence >= 1:
            logits = tta_logits(self.network, batch, self.tta)
        else:
            # train.evaluate.confident_tta_logits, without its data-dependent indexing (which neither
            # exporter can express): every image gets the views, the sure ones keep their plain logits.
            plain = self.network(batch).float()
            unsure = plain.softmax(1).amax(1) < self.tta_confidence
            logits = torch.where(unsure.unsqueeze(1), tta_logits(self.network, batch, self.tta, plain=plain), plain)
        return F.softmax(logits, dim=1)


class ExportResult(BaseModel):
    path: Path
    metadata_path: Path
    format: Format
    exporter: str  # which torch exporter produced the file
    bytes: int
    check_max_abs_diff: float  # the saved file, run back (onnxruntime / torch.jit.load), against the network
    metadata: dict[str, Any]


def build_classifier(source: ModelSource, tta: int | None = None) -> tuple[ImageClassifier, dict[str, Any]]:
    """The network with its preprocessing and TTA, in eval mode, and the metadata describing it."""
    network, config = load_network(source)
    level = config.tta if tta is None else tta
    if level not in TTA_VIEWS:
        raise WinnerError(f"--tta {level}: must be one of {', '.join(map(str, TTA_VIEWS))}")
    classifier = ImageClassifier(network, level, config.tta_confidence, config.channels_last).eval()
    return classifier, describe(source, config.model_dump(), count_parameters(network), level)


def describe(source: ModelSource, config: dict[str, Any], params: int, tta: int) -> dict[str, Any]:
    summary = source.summary
    test_acc, test_acc_tta = summary.get("test_acc"), summary.get("test_acc_tta")
    # The accuracy this very file should reproduce on the CIFAR-10 test set, when the run measured it.
    expected = test_acc if tta == 0 else test_acc_tta if tta == config.get("tta") else None
    classes = source.classes
    return {
        "classes": classes,
        "model": config["model"],
        "params": params,
        "test_acc": test_acc,
        "test_acc_tta": test_acc_tta,
        "expected_test_acc": expected,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": ["batch", IMAGE_SIDE, IMAGE_SIDE, 3],
                  "layout": "NHWC", "channels": "RGB", "range": [0, 255]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(classes)],
                   "meaning": "softmax probabilities, in the order of classes"},
        "preprocessing": {"formula": "(pixel - 255 * mean) / (255 * std), per RGB channel",
                          "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)},
        "tta": tta,
        "tta_views": TTA_VIEWS[tta],
        "tta_confidence": config.get("tta_confidence", 1.0),  # views only where the plain top probability is below
        "source": {"sweep": source.origin.sweep, "run": source.origin.run, "checkpoint": str(source.checkpoint)},
        "derived_from": summary.get("derived_from"),
        "config": config,
        "code_version": code_version(),
        "torch": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_run(ident: str, fmt: str | None, out: Path, open_store: StoreFactory,
               tta: int | None = None) -> ExportResult:
    """`sweep export ID`: the format checked first, then the sweep, run or checkpoint `ident` names."""
    fmt = resolve_format(fmt, out)
    return export_model(resolve_source(ident, open_store), fmt, out, tta)


def export_model(source: ModelSource, fmt: str | None, out: Path, tta: int | None = None) -> ExportResult:
    """Write `out` (and `<out>.json`) atomically: on any error neither is left behind, half-written or not."""
    fmt = resolve_format(fmt, out)
    classifier, metadata = build_classifier(source, tta)
    metadata["format"] = fmt
    out = out.expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WinnerError(f"{out.parent}: cannot create the folder ({error.strerror})") from None
    sidecar = out.with_name(out.name + ".json")
    tmp_model, tmp_sidecar = (path.with_name(f".{path.name}.{os.getpid()}.tmp") for path in (out, sidecar))
    try:
        if fmt == "onnx":
            exporter, diff = _write_onnx(classifier, metadata, tmp_model)
        else:
            exporter, diff = _write_torchscript(classifier, metadata, tmp_model)
        tmp_sidecar.write_text(json.dumps(metadata, indent=2) + "\n")
        os.replace(tmp_model, out)
        os.replace(tmp_sidecar, sidecar)
    except OSError as error:
        raise WinnerError(f"{out}: cannot write ({error.strerror or error})") from None
    finally:
        for tmp in (tmp_model, tmp_sidecar):
            tmp.unlink(missing_ok=True)
    return ExportResult(path=out, metadata_path=sidecar, format=fmt, exporter=exporter, bytes=out.stat().st_size,
                        check_max_abs_diff=diff, metadata=metadata)


def resolve_format(fmt: str | None, out: Path) -> Format:
    if fmt is None:
        if out.suffix.lower() not in SUFFIXES:
            raise WinnerError(f"--out {out}: cannot tell the format from its suffix; pass --format "
                              f"{' or '.join(FORMATS)}")
        return SUFFIXES[out.suffix.lower()]  # type: ignore[return-value]
    if fmt not in FORMATS:
        raise WinnerError(f"--format {fmt!r}: unknown format; use {' or '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def check_images(count: int = 4, seed: int = 0) -> torch.Tensor:
    """Fixed random uint8 images used to check a written file against the network."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, size=(count, IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8))


def _check(expected: torch.Tensor, actual: np.ndarray, path: Path, what: str) -> float:
    diff = float(np.abs(expected.numpy() - actual).max())
    if not diff <= CHECK_TOLERANCE:
        raise WinnerError(f"{path}: {what} differs from the network by {diff:.2e} (over {CHECK_TOLERANCE:g})")
    return diff


def _write_torchscript(classifier: ImageClassifier, metadata: dict[str, Any], path: Path) -> tuple[str, float]:
    example = check_images()
    metadata["exporter"] = "torch.jit.trace"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constants: the images' size is fixed by design
        traced = torch.jit.trace(classifier, example)
        expected = classifier(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation note: TorchScript is what was asked
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})
        # Run the file itself, at a batch size other than the traced one: the batch dimension must be free.
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        actual = torch.cat([loaded(example[:1]), loaded(example[1:])]).numpy()
    return metadata["exporter"], _check(expected, actual, path, "the TorchScript file")


def _write_onnx(classifier: ImageClassifier, metadata: dict[str, Any], path: Path) -> tuple[str, float]:
    import onnx
    import onnxruntime

    example = check_images()
    proto, exporter = _onnx_proto(classifier, example)
    metadata["exporter"] = exporter
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = "uint8 RGB images (N, 32, 32, 3) -> class probabilities; metadata_props describe it"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise WinnerError(f"{path}: the exported ONNX model fails onnx.checker ({str(error).splitlines()[0]})") from None
    onnx.save_model(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = classifier(example)
    actual = np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: example[i:i + 1].numpy()})[0]
                             for i in range(len(example))])
    return exporter, _check(expected, actual, path, "onnxruntime's output")


def _onnx_proto(classifier: ImageClassifier, example: torch.Tensor):
    """The new (dynamo) exporter first; the TorchScript-based one if it fails on this network."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(classifier, (example,), dynamo=True, opset_version=ONNX_OPSET,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        return program.model_proto, f"torch.onnx.export(dynamo=True), opset {ONNX_OPSET}"
    except Exception as error:  # the new exporter raises many types; the old one is a complete fallback
        dynamo_error = f"{type(error).__name__}: {' '.join(str(error).split())[:120]}"
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(classifier, (example,), buffer, dynamo=False, opset_version=17,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue()), f"torch.onnx.export(dynamo=False) after: {dynamo_error}"


def code_version() -> str:
    """The package version, with `git describe` when running from a git checkout of it."""
    try:
        version = importlib.metadata.version("cifar-sweep")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=5)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
            return version
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                                   capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version} (git {described.stdout.strip()})" if described.returncode == 0 else version
