"""`sweep export` and `sweep predict`: the winning network out of the tool, and on real images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from cli.common import HomeOption, JsonOption, StoreOption, cli_errors, console, errors, open_store_for


def export(
    ident: Annotated[str, typer.Argument(
        metavar="ID", help="A sweep id (its best finished run), a run id, or a checkpoint file or run folder "
                           "(as `sweep train --run-dir` writes).")],
    out: Annotated[Path, typer.Option("--out", help="The file to write; `<out>.json` gets its metadata.")],
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="torchscript or onnx (default: from --out's suffix, .pt or .onnx).")] = None,
    tta: Annotated[Optional[int], typer.Option(
        help="Test-time augmentation inside the file: 0 none, 1 mirror, 2 mirror + two "
             "one-pixel shifts, 3 mirror + four (default: the run's).")] = None,
    store: StoreOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a trained network as one file that takes uint8 RGB images (N, 32, 32, 3) and returns class
    probabilities, with its preprocessing and test-time augmentation inside."""
    from winner.export import export_run

    with cli_errors():
        result = export_run(ident, fmt, out, lambda: open_store_for(store, home), tta)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    meta = result.metadata
    origin = f"run {meta['source']['run']}" if meta["source"]["run"] else meta["source"]["checkpoint"]
    if meta.get("derived_from"):
        origin += f" (trained with the config of run {meta['derived_from'].get('run')})"
    accuracy = meta["expected_test_acc"]
    console.print(Text(f"wrote {result.path} ({result.format}, {result.bytes / 1e6:.1f} MB) from {origin}: "
                       f"{meta['model']}, {meta['params']:,} parameters, TTA {meta['tta']}"
                       + (f", test accuracy {accuracy:.2%}" if accuracy is not None else "")), soft_wrap=True)
    console.print(Text(f"metadata in the file and in {result.metadata_path}; exporter {result.exporter}; "
                       f"file checked against the network: max abs difference {result.check_max_abs_diff:.1e}"),
                  soft_wrap=True)


def predict(
    model: Annotated[Path, typer.Argument(help="A file from `sweep export` (either format), a training "
                                               "checkpoint, or a run folder (its newest checkpoint).")],
    images: Annotated[list[Path], typer.Argument(
        metavar="IMAGE_OR_FOLDER...", help="Image files (PNG, JPEG, any size); a folder means every file under it.")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes to show per image.")] = 3,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Also write one row per image here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 256,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print a list: per image {path, top: [{class, probability}]} or {path, error}.")] = False,
) -> None:
    """Classify images: each is converted to RGB and resized as a whole to 32x32 (PIL bicubic, no crop).

    A file that is not a readable image gets an error row and the rest go on; the exit code is then 1.
    """
    from winner.predict import predict_paths, write_csv

    with cli_errors():
        report = predict_paths(model, images, top_k, batch_size)
        if csv_out is not None:
            write_csv(report, csv_out, top_k)
    if as_json:
        print(json.dumps([row.as_json() for row in report.predictions], indent=2))
    else:
        table = Table(title=Text(f"{report.model.path} ({report.model.kind})"))
        table.add_column("image")
        table.add_column(f"top {top_k}")
        for row in report.predictions:
            if row.error is not None:
                table.add_row(Text(row.path), Text(f"error: {row.error}", style="red"))
            else:
                table.add_row(Text(row.path), Text(", ".join(f"{c.class_name} {c.probability:.1%}"
                                                             for c in row.top or [])))
        console.print(table)
    if report.failed:
        errors.print(Text(f"{report.failed} of {len(report.predictions)} files could not be classified"))
        raise typer.Exit(1)
