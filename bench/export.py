"""The exported model against the run it came from, and `sweep predict` on real image files.

    python -m bench.export --run-dir RUN_DIR --data-dir DATA --out bench/results/export.jsonl

For both formats (TorchScript, ONNX), on the 10,000 CIFAR-10 test images: the exported file's
accuracy against the run's recorded test accuracy (with the run's TTA against `test_acc_tta`,
without TTA against `test_acc`), and onnxruntime's probabilities against torch's. Then the first
`--images` test images are written as PNG files and classified by `sweep predict`'s code path
(file reading and resizing included): accuracy, latency per image at batch size 1, and
throughput at `--batch-size`. One JSON line per measurement is appended to `--out`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from PIL import Image

from bench import jsonl
from data.cifar import load_cifar10
from winner.export import export_model
from winner.predict import classify, load_predictor
from winner.source import ModelSource, folder_checkpoint, read_checkpoint, source_from_path

FORMATS = {"torchscript": "pt", "onnx": "onnx"}


def model_source(checkpoint: Path, result: Path | None) -> ModelSource:
    if result is None:
        return source_from_path(checkpoint)
    state = read_checkpoint(checkpoint)
    summary = json.loads(result.read_text())
    if summary.get("config") != state["config"]:
        sys.exit(f"{result}: its config is not the checkpoint's; it describes another run")
    return ModelSource(checkpoint=checkpoint, config=state["config"], summary=summary)


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(1) == labels).mean())


def batched(predictor, images: np.ndarray, size: int = 500) -> np.ndarray:
    return np.concatenate([predictor.probabilities(images[i:i + size]) for i in range(0, len(images), size)])


def write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (image, label) in enumerate(zip(images, labels)):
        path = folder / f"{index:05d}_{classes[label]}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", type=Path, help="a run folder: its newest checkpoint (and result.json)")
    where.add_argument("--checkpoint", type=Path, help="a checkpoint file")
    parser.add_argument("--result", type=Path, default=None,
                        help="the run's TrainResult JSON (default: result.json beside the checkpoint)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--images", type=int, default=1000, help="test images written as PNG for predict")
    parser.add_argument("--latency-images", type=int, default=200, help="of those, classified one at a time")
    parser.add_argument("--batch-size", type=int, default=256, help="predict's batch size for throughput")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here as well as to stdout")
    args = parser.parse_args(argv)

    checkpoint = args.checkpoint or folder_checkpoint(args.run_dir)
    source = model_source(checkpoint, args.result)
    recorded = {"test_acc": source.summary.get("test_acc"), "test_acc_tta": source.summary.get("test_acc_tta")}
    if recorded["test_acc"] is None:
        sys.exit(f"{checkpoint}: no recorded test_acc (pass --result with the run's result JSON)")
    data = load_cifar10(args.data_dir, download=False)
    images = data.test_images.permute(0, 2, 3, 1).contiguous().numpy()
    labels = data.test_labels.numpy()
    common = {"bench": "export", "checkpoint": str(checkpoint), "model": source.config["model"],
              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine()}

    def emit(record: dict[str, Any]) -> None:
        jsonl.emit({**common, **record}, args.out)

    run_tta = int(source.config.get("tta", 0))
    levels = [run_tta] + ([0] if run_tta else [])
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        folder = Path(scratch)
        outputs: dict[tuple[str, int], np.ndarray] = {}
        predictors = {}
        for tta in levels:
            expected_key = "test_acc_tta" if tta else "test_acc"
            for fmt, suffix in FORMATS.items():
                started = time.perf_counter()
                exported = export_model(source, fmt, folder / f"tta{tta}.{suffix}", tta=tta)
                export_seconds = time.perf_counter() - started
                predictor = load_predictor(exported.path)
                started = time.perf_counter()
                outputs[fmt, tta] = batched(predictor, images)
                seconds = time.perf_counter() - started
                measured = accuracy(outputs[fmt, tta], labels)
                print(f"{fmt:11s} TTA {tta}: {measured:.2%} on {len(labels):,} test images, recorded "
                      f"{expected_key} {recorded[expected_key]:.2%}, difference "
                      f"{100 * (measured - recorded[expected_key]):+.3f} percentage points", file=sys.stderr)
                emit({"measurement": "test_accuracy", "format": fmt, "tta": tta, "images": len(labels),
                      "accuracy": measured, "recorded_key": expected_key, "recorded": recorded[expected_key],
                      "difference_pp": 100 * (measured - recorded[expected_key]),
                      "export_seconds": round(export_seconds, 2), "exporter": exported.exporter,
                      "eval_seconds": round(seconds, 2), "bytes": exported.bytes})
                if tta == run_tta:
                    predictors[fmt] = predictor
            difference = float(np.abs(outputs["onnx", tta] - outputs["torchscript", tta]).max())
            print(f"onnxruntime vs torch, TTA {tta}: max abs difference of probabilities {difference:.2e}",
                  file=sys.stderr)
            emit({"measurement": "onnxruntime_vs_torch", "tta": tta, "images": len(labels),
                  "max_abs_diff": difference,
                  "argmax_disagreements": int((outputs["onnx", tta].argmax(1)
                                               != outputs["torchscript", tta].argmax(1)).sum())})

        count = min(args.images, len(labels))
        paths = write_pngs(folder / "png", images[:count], labels[:count], list(data.classes))
        for fmt, predictor in predictors.items():
            exported_acc = accuracy(outputs[fmt, run_tta][:count], labels[:count])
            started = time.perf_counter()
            rows = classify(predictor, paths, top_k=1, batch_size=args.batch_size)
            batch_seconds = time.perf_counter() - started
            predicted = np.array([data.classes.index(row.top[0].class_name) for row in rows])
            predict_acc = float((predicted == labels[:count]).mean())
            latencies = []
            for path in paths[:args.latency_images]:
                started = time.perf_counter()
                classify(predictor, [path], top_k=1, batch_size=1)
                latencies.append(time.perf_counter() - started)
            print(f"predict {fmt:11s} TTA {run_tta}: {predict_acc:.2%} on {count} PNG files (exported model on the "
                  f"same images: {exported_acc:.2%}); {count / batch_seconds:,.0f} images/s at batch "
                  f"{args.batch_size}; {1000 * statistics.median(latencies):.1f} ms per image at batch 1 "
                  f"(median of {len(latencies)})", file=sys.stderr)
            emit({"measurement": "predict", "format": fmt, "tta": run_tta, "images": count,
                  "accuracy": predict_acc, "exported_accuracy_same_images": exported_acc,
                  "batch_size": args.batch_size, "throughput_images_per_second": round(count / batch_seconds, 1),
                  "latency_images": len(latencies), "latency_ms_median": round(1000 * statistics.median(latencies), 2),
                  "latency_ms_mean": round(1000 * statistics.fmean(latencies), 2),
                  "latency_ms_p90": round(1000 * float(np.percentile(latencies, 90)), 2)})


if __name__ == "__main__":
    main()
