"""The benchmark commands run end to end and print what their docs promise (numbers not judged here)."""

from __future__ import annotations

import json

import pytest

from bench import throughput


def test_throughput_prints_the_matmul_peak_then_one_line_per_network(capsys):
    throughput.main(["--models", "fast-small", "--batch-size", "8", "--steps", "1", "--rounds", "1", "--peak",
                     "--peak-size", "512", "--device", "cpu"])
    peak, row = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert peak["gflops_per_second"] > 0 and peak["size"] == 512
    assert row["model"] == "fast-small" and row["speedup"] > 0
    # The printed fields are rounded (images/s and GFLOP/s to 0.1, GFLOP to 0.001), so their product
    # matches the achieved rate only within what that rounding allows, however slow the machine.
    achieved = row["images_per_second"] * row["gflops_per_image"]
    allowed = 0.05 * row["gflops_per_image"] + 0.0005 * row["images_per_second"] + 0.05
    assert row["achieved_gflops_per_second"] == pytest.approx(achieved, rel=5e-3, abs=allowed)


def test_flops_are_counted_without_training_and_today_is_the_reference(tmp_path):
    from bench import flops
    from train import TrainConfig

    out = tmp_path / "flops.jsonl"
    # Today's recipe in every key the reference pins (bench.flops sets model, val_size; --epochs the rest).
    pinned = [f"{key}={value}" for key, value in flops.REFERENCE_RECIPE.items()
              if key not in ("model", "epochs", "val_size", "train_size")]
    flops.main(["--model", "fast", "--epochs", "10", "7.5", *[arg for kv in pinned for arg in ("--set", kv)],
                "--out", str(out)])
    ten, short = [json.loads(line) for line in out.read_text().splitlines()]
    assert (ten["steps"], ten["images_processed"], ten["batch_size"]) == (250, 500_000, 2000)
    assert ten["ratio_to_today_counted"] == 1.0 and short["steps"] == 188  # 7.5 x 25 steps, rounded as train() does
    assert ten["train_tflops"] == pytest.approx(ten["gflops_per_image"] * 500, rel=1e-3)
    assert short["ratio_to_354_tflop"] == pytest.approx(short["train_tflops"] / 354, abs=1e-4)
    # The registry's recipe: 66 steps of 750 images an epoch (the last 500 images dropped), within
    # the 0.75x of the reference that it was chosen under.
    recipe = tmp_path / "recipe.jsonl"
    flops.main(["--model", "fast", "--out", str(recipe)])
    [ours] = [json.loads(line) for line in recipe.read_text().splitlines()]
    assert (ours["epochs"], ours["batch_size"], ours["steps"]) == (7.5, 750, 495)
    assert ours["ratio_to_354_tflop"] <= 0.75
    # BatchNorm calibration adds one forward pass per image it uses: 13 whole batches of 750.
    calibrated = TrainConfig.resolve({"model": "fast", "val_size": 0, "bn_calibration_images": 10_000})
    plain = calibrated.changed(bn_calibration_images=0)
    extra = flops.training_flops(calibrated)[0] - flops.training_flops(plain)[0]
    assert extra == pytest.approx(9_750 * flops.forward_flops_per_image(plain), rel=1e-9)
    # Counting shapes on meta tensors gives what counting a real step on real tensors gives.
    config = TrainConfig.resolve({"model": "fast"})
    assert flops.step_flops(config, 4, 32, True) / 4 / 1e9 == pytest.approx(
        throughput.training_gflops_per_image("fast"), rel=1e-6)


def test_gpu_bench_times_the_airbench_way_and_reports_the_work(tiny_data_dir, capsys):
    from bench import gpu

    gpu.main(["--data-dir", str(tiny_data_dir), "--device", "cpu", "--no-compile", "--seeds", "2", "--targets", "94",
              "--set", "model=fast-small", "--set", "train_size=64", "--set", "batch_size=32", "--set", "epochs=1",
              "--set", "precision=fp32"])
    header, *runs, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "whitening init + training + TTA evaluation" in header["timing"]
    assert "excludes one warm-up run and per-epoch evaluation" in header["timing"]
    assert [run["seed"] for run in runs] == [0, 1]
    for run in runs:
        assert run["timed_seconds"] == pytest.approx(run["train_seconds"] + run["tta_eval_seconds"], abs=2e-3)
        assert run["tta_eval_seconds"] > 0 and run["gflops_per_image"] > 0
        assert (run["config"]["model"], run["config"]["batch_size"], run["config"]["seed"], run["config"]["epochs"]) == (
            "fast-small", 32, run["seed"], 1)
    assert runs[0]["train_flops"] == pytest.approx(2 * 32 * runs[0]["gflops_per_image"] * 1e9, rel=1e-3)
    assert summary["seeds"] == 2 and summary["reached"] is False and summary["time_to_target_seconds"] is None
    assert summary["mean_timed_seconds"] == pytest.approx(sum(r["timed_seconds"] for r in runs) / 2, abs=2e-3)


def test_grid_bench_drains_a_sweep_with_real_agents_and_tables_it_by_validation(tiny_data_dir, tmp_path, capsys):
    from bench import grid

    sweep = tmp_path / "tiny-grid.yaml"
    sweep.write_text("method: grid\nmetric: {name: val_acc, goal: maximize}\nparameters:\n"
                     "  model: {value: fast-small}\n  lr: {values: [0.02, 0.24]}\n  epochs: {value: 1}\n"
                     "  batch_size: {value: 32}\n  train_size: {value: 64}\n  val_size: {value: 32}\n"
                     "  tta: {value: 0}\n  precision: {value: fp32}\n")
    out = tmp_path / "grid.jsonl"
    grid.main(["--data-dir", str(tiny_data_dir), "--sweep", str(sweep), "--agents", "2", "--deadline-s", "300",
               "--home", str(tmp_path / "home"), "--out", str(out)])
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["values"]["lr"] for row in rows) == [0.02, 0.24]
    assert all(row["state"] == "finished" and row["epochs"] == 1 and row["agents"] == 2 for row in rows)
    assert all(0 <= row["best_val_acc"] <= 1 and row["test_acc"] is not None for row in rows)
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| lr | state | best val % | test %")
    best_first = sorted(rows, key=lambda row: -row["best_val_acc"])
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| {row['values']['lr']}" for row in best_first]
    assert "The paper's best: 84.5% test accuracy." in printed
    assert "2 of 2 runs finished" in printed


def test_grid_bench_stops_agents_at_the_deadline_and_says_what_is_left(tiny_data_dir, tmp_path, capsys):
    from bench import grid

    with pytest.raises(SystemExit) as stopped:
        grid.main(["--data-dir", str(tiny_data_dir), "--sweep", str(grid.ROOT / "sweeps" / "paper-grid-10.yaml"),
                   "--agents", "1", "--deadline-s", "0.5", "--home", str(tmp_path / "home")])
    assert stopped.value.code == 1
    printed = capsys.readouterr().out
    assert "0 of 9 runs finished" in printed and "1 agent stopped at the deadline" in printed
    assert "finishes the rest" in printed


def test_tta_levels_are_compared_on_the_weights_accuracy_kept(tiny_data_dir, tmp_path, capsys):
    from bench import accuracy, tta

    from conftest import PLUMBING_MODEL

    trained = tmp_path / "trained.jsonl"
    train_args = ["--model", PLUMBING_MODEL, "--seeds", "3", "--data-dir", str(tiny_data_dir), "--out", str(trained),
                  "--run-dir", str(tmp_path / "runs"), "--set", "train_size=96", "--set", "val_size=64",
                  "--set", "batch_size=32", "--set", "epochs=1", "--set", "precision=fp32"]
    accuracy.main(train_args)
    [run] = [json.loads(line) for line in trained.read_text().splitlines()]
    assert run["checkpoint"] == str(tmp_path / "runs" / "seed-3" / "checkpoint-0001.pt")
    capsys.readouterr()
    tta.main([str(tmp_path / "runs" / "seed-3"), "--levels", "0", "1", "2", "3", "--data-dir", str(tiny_data_dir)])
    rows = {row["tta"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert [rows[level]["views"] for level in (0, 1, 2, 3)] == [1, 2, 6, 10]
    assert all(row["seed"] == 3 and row["checkpoint"] == run["checkpoint"] for row in rows.values())
    # The same weights and images as training's own evaluation, so the same numbers (views shared
    # between levels included): the plain view on the run's validation images, and the run's TTA
    # level on the test set.
    assert rows[0]["val_acc"] == run["val_acc"] and rows[0]["test_acc"] == run["test_acc"]
    assert rows[run["config"]["tta"]]["test_acc"] == run["test_acc_tta"]
