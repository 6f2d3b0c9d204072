"""`sweep predict`: classify image files with an exported model or a training checkpoint.

Images of any size are read with PIL, turned upright by their EXIF orientation, converted to RGB
(an alpha channel is dropped) and resized as a whole, without cropping, to 32x32 with PIL's
bicubic filter (which also smooths when it shrinks). A 32x32 image is used as it is. The pixels go
to the model as uint8 RGB (N, 32, 32, 3), the input every exported file takes.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from winner.errors import WinnerError
from winner.files import write_text_atomically

IMAGE_SIDE = 32
RESIZE_METHOD = "PIL bicubic resize of the whole image to 32x32 (no crop, aspect ratio not kept)"
DEFAULT_BATCH = 256
ModelKind = Literal["torchscript", "onnx", "checkpoint"]


class ClassProbability(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_name: str = Field(alias="class")
    probability: float


class Prediction(BaseModel):
    """One input file: its top classes, or why it could not be classified."""

    path: str
    top: list[ClassProbability] | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class ModelInfo(BaseModel):
    path: str
    kind: ModelKind
    classes: list[str]
    metadata: dict[str, Any]


class PredictionReport(BaseModel):
    model: ModelInfo
    resize: str = RESIZE_METHOD
    predictions: list[Prediction]

    @property
    def failed(self) -> int:
        return sum(1 for p in self.predictions if p.error is not None)


# -- models ---------------------------------------------------------------------------------------------


class Predictor:
    """A loaded model: uint8 (N, 32, 32, 3) RGB images in, (N, classes) probabilities out."""

    def __init__(self, path: Path, kind: ModelKind, classes: list[str], metadata: dict[str, Any]) -> None:
        self.info = ModelInfo(path=str(path), kind=kind, classes=classes, metadata=metadata)

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TorchPredictor(Predictor):
    def __init__(self, module: Any, **info: Any) -> None:
        super().__init__(**info)
        self.module = module

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(images))).numpy()


class OnnxPredictor(Predictor):
    def __init__(self, session: Any, **info: Any) -> None:
        super().__init__(**info)
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images)})[0]


def model_kind(path: Path) -> ModelKind:
    """Which of the three files this is, by content: a checkpoint by its header (or, from earlier
    versions, a torch.save archive), TorchScript as a zip archive holding code/, ONNX as a protobuf
    with a graph. A folder means the newest checkpoint in it."""
    from winner.source import folder_checkpoint, is_checkpoint_file

    if path.is_dir():
        folder_checkpoint(path)  # raises when the folder holds none
        return "checkpoint"
    if not path.is_file():
        raise WinnerError(f"{path}: no such model file")
    if is_checkpoint_file(path):
        return "checkpoint"
    foreign = WinnerError(f"{path}: not a model file (expected a TorchScript or ONNX file written by "
                          "`sweep export`, or a training checkpoint)")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if any("/code/" in name for name in archive.namelist()):
                    return "torchscript"
            raise foreign
        import onnx

        proto = onnx.load_model(str(path), load_external_data=False)
    except (OSError, zipfile.BadZipFile):
        raise foreign from None
    except Exception:  # protobuf's DecodeError and friends: not an ONNX file
        raise foreign from None
    if proto.ir_version <= 0 or not proto.graph.node:
        raise foreign
    return "onnx"


def load_predictor(path: Path) -> Predictor:
    """An exported file of either format, a training checkpoint, or a run folder holding one."""
    path = path.expanduser()
    kind = model_kind(path)
    if kind == "checkpoint":
        from winner.export import build_classifier
        from winner.source import source_from_path

        classifier, metadata = build_classifier(source_from_path(path))
        return TorchPredictor(classifier, path=path, kind=kind, classes=metadata["classes"], metadata=metadata)
    if kind == "torchscript":
        import torch

        from winner.export import METADATA_FILE

        files = {METADATA_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation note
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except RuntimeError as error:
            raise WinnerError(f"{path}: cannot load as TorchScript ({' '.join(str(error).split())[:160]})") from None
        metadata = _metadata(path, files[METADATA_FILE])
        return TorchPredictor(module.eval(), path=path, kind=kind, classes=_classes(path, metadata),
                              metadata=metadata)
    import onnx
    import onnxruntime
    import torch

    proto = onnx.load_model(str(path), load_external_data=False)
    metadata = {entry.key: _metadata(path, entry.value, entry.key) for entry in proto.metadata_props}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same threads torch would use
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types (Fail, InvalidGraph, ...)
        raise WinnerError(f"{path}: onnxruntime cannot load it ({' '.join(str(error).split())[:160]})") from None
    return OnnxPredictor(session, path=path, kind=kind, classes=_classes(path, metadata), metadata=metadata)


def _metadata(path: Path, text: str, key: str | None = None) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        if key is not None:  # a foreign ONNX property: keep it as the text it is
            return text
        raise WinnerError(f"{path}: its metadata is not JSON; export the model with `sweep export`") from None


def _classes(path: Path, metadata: dict[str, Any]) -> list[str]:
    classes = metadata.get("classes") if isinstance(metadata, dict) else None
    if not isinstance(classes, list) or not classes:
        raise WinnerError(f"{path}: no class names in its metadata; export the model with `sweep export`")
    return [str(c) for c in classes]


# -- images ---------------------------------------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """uint8 RGB (32, 32, 3) by the method in this module's docstring; WinnerError names the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            rgb = upright.convert("RGB")
    except FileNotFoundError:
        raise WinnerError("no such file") from None
    except IsADirectoryError:
        raise WinnerError("a folder, not an image") from None
    except UnidentifiedImageError:
        raise WinnerError("not an image (PIL cannot identify it)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # truncated, corrupt
        raise WinnerError(f"unreadable image ({type(error).__name__}: {' '.join(str(error).split())[:120]})") from None
    if rgb.size != (IMAGE_SIDE, IMAGE_SIDE):
        rgb = rgb.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def expand_inputs(inputs: Iterable[Path]) -> list[Path]:
    """Files as given; a folder becomes every file under it (hidden ones skipped), sorted by path."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = [p for p in item.rglob("*")
                     if p.is_file() and not any(part.startswith(".") for part in p.relative_to(item).parts)]
            files.extend(sorted(found))
        else:
            files.append(item)
    return files


def _chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def top_classes(probabilities: np.ndarray, classes: list[str], k: int) -> list[list[ClassProbability]]:
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[ClassProbability(class_name=classes[i], probability=float(row[i])) for i in idx]
            for row, idx in zip(probabilities, order)]


def classify(predictor: Predictor, files: Sequence[Path], top_k: int = 5,
             batch_size: int = DEFAULT_BATCH) -> list[Prediction]:
    """One Prediction per file, in order; unreadable files get an error instead of stopping the rest."""
    if not 1 <= top_k <= len(predictor.classes):
        raise WinnerError(f"--top-k {top_k}: must lie in 1..{len(predictor.classes)}")
    if batch_size < 1:
        raise WinnerError(f"--batch-size {batch_size}: must be at least 1")
    rows: list[Prediction] = []
    for chunk in _chunks(files, batch_size):
        images: list[np.ndarray] = []
        slots: list[int] = []
        for path in chunk:
            try:
                images.append(read_image(path))
                slots.append(len(rows))
                rows.append(Prediction(path=str(path)))
            except WinnerError as error:
                rows.append(Prediction(path=str(path), error=str(error)))
        if images:
            probabilities = predictor.probabilities(np.stack(images))
            for slot, top in zip(slots, top_classes(probabilities, predictor.classes, top_k)):
                rows[slot].top = top
    return rows


def predict_paths(model: Path, inputs: Sequence[Path], top_k: int = 5,
                  batch_size: int = DEFAULT_BATCH) -> PredictionReport:
    """`sweep predict`: load the model once, classify every file named or found under a folder."""
    predictor = load_predictor(model)
    files = expand_inputs(inputs)
    return PredictionReport(model=predictor.info, predictions=classify(predictor, files, top_k, batch_size))


def write_csv(report: PredictionReport, out: Path, top_k: int) -> None:
    """path, class_1, probability_1, ..., error: one row per file; written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["path"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    writer.writerow(header + ["error"])
    for row in report.predictions:
        cells: list[Any] = [row.path]
        for rank in range(top_k):
            entry = row.top[rank] if row.top and rank < len(row.top) else None
            cells += [entry.class_name, f"{entry.probability:.6f}"] if entry else ["", ""]
        writer.writerow(cells + [row.error or ""])
    out = out.expanduser()
    write_text_atomically(out, buffer.getvalue(), f"--csv {out}: cannot write")
