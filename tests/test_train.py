"""The training function: results, determinism, exact resume, configuration errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from conftest import PLUMBING_MODEL
from data.cifar import load_cifar10
from model.registry import PAPER_RECIPE
from train import EPOCH_METRICS, ConfigError, TrainConfig, TrainHooks, list_checkpoints, train
from train.checkpoint import read_checkpoint
from train.loop import PREDICTIONS_NAME, SAMPLES_NAME

TINY = dict(train_size=96, batch_size=32, val_size=40, epochs=2, tta=0, precision="fp32")


def tiny_config(**overrides) -> TrainConfig:
    return TrainConfig.resolve({"model": PLUMBING_MODEL, **TINY, **overrides})


@pytest.fixture
def tiny_data(tiny_data_dir: Path):
    return load_cifar10(tiny_data_dir, download=False)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights in the run folder's newest checkpoint."""
    return read_checkpoint(list_checkpoints(run_dir)[0])["model"]


class StopAfterFirstEpoch(TrainHooks):
    def on_epoch(self, event) -> None:
        if event.metrics.epoch == 1:
            event.stop("test stop")


class StopAtCall(TrainHooks):
    """Asks to stop at the n-th question, i.e. after n steps."""

    def __init__(self, n: int) -> None:
        self.n, self.asked = n, 0

    def should_stop(self) -> bool:
        self.asked += 1
        return self.asked == self.n


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_result_reports_every_metric_and_the_final_evaluation(tiny_data, tmp_path: Path):
    result = train(tiny_config(tta=2), data=tiny_data, run_dir=tmp_path)
    assert result.status == "finished" and len(result.history) == 2
    for epoch in result.history:
        row = epoch.model_dump()
        assert set(EPOCH_METRICS) <= row.keys()
        for key in ("train_acc", "val_acc"):
            assert 0.0 <= row[key] <= 1.0
        assert epoch.images_per_second > 0 and epoch.epoch_seconds > 0 and math.isfinite(epoch.train_loss)
    assert 0.0 <= result.test_acc <= 1.0 and 0.0 <= result.test_acc_tta <= 1.0
    matrix = torch.tensor(result.confusion_matrix)
    assert matrix.shape == (10, 10) and matrix.sum() == 40
    assert result.true_counts == matrix.sum(1).tolist() and result.predicted_counts == matrix.sum(0).tolist()
    assert result.per_class_acc[0] == pytest.approx(matrix[0, 0].item() / max(1, matrix[0].sum().item()))
    assert result.test_acc == pytest.approx(matrix.diag().sum().item() / 40)
    assert result.params == 146_136
    for artifact in ("checkpoint-0001.pt", "checkpoint-0002.pt", PREDICTIONS_NAME, SAMPLES_NAME):
        assert (tmp_path / artifact).is_file()
    assert result.checkpoint == str(tmp_path / "checkpoint-0002.pt") and result.resumed_from is None


def test_hooks_see_every_step_and_epoch_and_can_stop_mid_epoch(tiny_data, tmp_path: Path):
    class Recorder(TrainHooks):
        def __init__(self) -> None:
            self.steps, self.epochs, self.asked = [], [], 0

        def on_step(self, step: int, total: int) -> None:
            self.steps.append((step, total))

        def on_epoch(self, event) -> None:
            assert event.checkpoint is not None and event.checkpoint.is_file()  # saved before the hook
            self.epochs.append((event.metrics.epoch, event.epochs, event.checkpoint.name))

        def should_stop(self) -> bool:
            self.asked += 1
            return self.asked == 5  # two steps into the second epoch (3 steps per epoch)

    recorder = Recorder()
    result = train(tiny_config(epochs=2), recorder, data=tiny_data, run_dir=tmp_path)
    assert recorder.steps == [(step, 6) for step in range(1, 6)]
    assert recorder.epochs == [(1, 2, "checkpoint-0001.pt")]
    assert result.status == "stopped" and result.stop_reason == "preempted"
    assert result.checkpoint == str(tmp_path / "checkpoint-0001-step00002.pt")
    assert list_checkpoints(tmp_path) == [tmp_path / "checkpoint-0001-step00002.pt", tmp_path / "checkpoint-0001.pt"]


def test_training_learns_the_tiny_task(tiny_data):
    result = train(tiny_config(train_size=None, val_size=40, epochs=4), data=tiny_data)
    assert result.history[-1].val_acc > 0.5  # ten separable colour classes; chance is 0.1


def test_same_seed_gives_identical_weights_on_cpu(tiny_data, tmp_path: Path):
    train(tiny_config(), data=tiny_data, run_dir=tmp_path / "a")
    train(tiny_config(), data=tiny_data, run_dir=tmp_path / "b")
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    train(tiny_config(seed=1), data=tiny_data, run_dir=tmp_path / "c")
    assert not torch.equal(weights(tmp_path / "a")["head.weight"], weights(tmp_path / "c")["head.weight"])


def test_resume_after_a_stop_between_epochs_matches_an_uninterrupted_run(tiny_data, tmp_path: Path):
    config = tiny_config(train_size=64, epochs=3)
    straight = train(config, data=tiny_data, run_dir=tmp_path / "straight")

    first = train(config, StopAfterFirstEpoch(), data=tiny_data, run_dir=tmp_path / "resumed")
    assert first.status == "stopped" and len(first.history) == 1 and first.test_acc is None
    resumed = train(config, data=tiny_data, run_dir=tmp_path / "resumed")
    assert resumed.status == "finished" and len(resumed.history) == 3
    assert resumed.resumed_from == str(tmp_path / "resumed" / "checkpoint-0001.pt")
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    assert [h.train_loss for h in straight.history] == [h.train_loss for h in resumed.history]
    assert straight.test_acc == resumed.test_acc


def test_resume_mid_epoch_matches_an_uninterrupted_run(tiny_data, tmp_path: Path):
    # The paper's optimiser: SGD with momentum on a one-cycle schedule, whose state must resume too.
    paper = {key: PAPER_RECIPE[key] for key in ("optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup")}
    config = tiny_config(**paper, train_size=96, epochs=2)  # 3 steps per epoch
    train(config, data=tiny_data, run_dir=tmp_path / "straight")
    stopped = train(config, StopAtCall(5), data=tiny_data, run_dir=tmp_path / "resumed")
    assert stopped.status == "stopped" and stopped.stop_reason == "preempted" and len(stopped.history) == 1
    resumed = train(config, data=tiny_data, run_dir=tmp_path / "resumed")
    assert resumed.resumed_from == str(tmp_path / "resumed" / "checkpoint-0001-step00002.pt")
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))


def test_recipe_switches_train_and_resume_exactly(tiny_data, tmp_path: Path):
    # Lookahead's average and Muon's step counter live in the checkpoint: a resumed run must match.
    config = tiny_config(train_size=64, epochs=2, lookahead_every=2, lookahead_decay=0.9, muon_renorm_every=2,
                         muon_ns_steps=5, brightness=0.2, contrast=0.2, activation="silu", bn_momentum=0.2)
    straight = train(config, data=tiny_data, run_dir=tmp_path / "straight")
    assert all(math.isfinite(h.train_loss) for h in straight.history)
    train(config, StopAtCall(3), data=tiny_data, run_dir=tmp_path / "resumed")  # 2 steps per epoch
    resumed = train(config, data=tiny_data, run_dir=tmp_path / "resumed")
    assert resumed.resumed_from == str(tmp_path / "resumed" / "checkpoint-0001-step00001.pt")
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    assert read_checkpoint(list_checkpoints(tmp_path / "resumed")[0])["lookahead"] is not None


def test_batchnorm_calibration_averages_whole_batches_and_touches_no_weight():
    from contextlib import nullcontext

    from data.normalization import normalize
    from train.calibrate import recalibrate_batchnorm

    torch.manual_seed(0)
    conv, norm = torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4, momentum=0.4)
    model = torch.nn.Sequential(conv, norm).eval()
    images = torch.randint(0, 256, (70, 3, 8, 8), dtype=torch.uint8)
    filters = conv.weight.clone()
    batches = recalibrate_batchnorm(model, images, batch_size=32, dtype=torch.float32, channels_last=False,
                                    autocast=nullcontext)
    assert batches == 2  # the last 6 images make no whole batch, so they are left out
    with torch.no_grad():
        outputs = [conv(normalize(images[i:i + 32], torch.float32)) for i in (0, 32)]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outputs]).mean(0)
    variance = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outputs]).mean(0)
    torch.testing.assert_close(norm.running_mean, mean)
    torch.testing.assert_close(norm.running_var, variance)
    assert torch.equal(conv.weight, filters) and norm.momentum == 0.4 and not model.training


def test_batchnorm_calibration_changes_only_the_statistics_evaluation_uses(tiny_data, tmp_path: Path):
    plain = train(tiny_config(), data=tiny_data, run_dir=tmp_path / "plain")
    calibrated = train(tiny_config(bn_calibration_images=64, bn_momentum=0.9), data=tiny_data,
                       run_dir=tmp_path / "calibrated")
    assert [h.train_loss for h in plain.history] == [h.train_loss for h in calibrated.history]
    ours, theirs = weights(tmp_path / "plain"), weights(tmp_path / "calibrated")
    statistics = {name for name in ours if "running_" in name}
    assert statistics and all(torch.equal(ours[n], theirs[n]) for n in ours.keys() - statistics
                              if "num_batches" not in n)
    assert all(not torch.equal(ours[n], theirs[n]) for n in statistics)
    # Calibrated statistics do not depend on the momentum the running ones were kept with.
    again = train(tiny_config(bn_calibration_images=64), data=tiny_data, run_dir=tmp_path / "again")
    assert all(torch.equal(theirs[n], weights(tmp_path / "again")[n]) for n in statistics)
    assert again.test_acc == calibrated.test_acc


def test_network_options_reach_the_layers():
    from model.registry import build_model

    images = torch.randn(4, 3, 32, 32)
    outputs = {}
    for activation in ("gelu", "silu"):
        torch.manual_seed(0)
        model = build_model("fast", activation=activation, bn_momentum=0.25)
        assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.25}
        outputs[activation] = model(images)
    assert not torch.allclose(outputs["gelu"], outputs["silu"])
    resnet = build_model("resnet9", **TrainConfig.resolve({"model": "resnet9"}).network_options())
    assert {type(m).__name__ for m in resnet.modules()} >= {"ReLU"}
    assert {m.momentum for m in resnet.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}


def test_confident_tta_adds_views_only_where_the_plain_view_is_unsure():
    from model.registry import build_model
    from train.evaluate import confident_tta_logits, tta_logits

    torch.manual_seed(0)
    model = build_model("fast").eval()
    images = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        plain, full = tta_logits(model, images, 0), tta_logits(model, images, 2)
        assert torch.equal(confident_tta_logits(model, images, 2, 1.0), full)
        assert torch.equal(confident_tta_logits(model, images, 2, 1e-9), plain)
        threshold = plain.softmax(1).amax(1).median().item()
        mixed = confident_tta_logits(model, images, 2, threshold)
    unsure = plain.softmax(1).amax(1) < threshold
    assert 0 < unsure.sum() < 16
    assert torch.allclose(mixed[unsure], full[unsure], atol=1e-5) and torch.equal(mixed[~unsure], plain[~unsure])


class ViewRecorder(torch.nn.Module):
    """Logits that name the call: the k-th forward pass returns one-hot k, so the TTA average
    shows each view's weight; the views themselves are kept."""

    def __init__(self):
        super().__init__()
        self.views: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.views.append(images.clone())
        return torch.nn.functional.one_hot(torch.full((len(images),), len(self.views) - 1), 16).float()


def _shift_of(view: torch.Tensor, image: torch.Tensor) -> tuple[int, int] | None:
    """(down, right) pixels by which `view` shows `image` moved, judged away from the border."""
    for down in (-1, 0, 1):
        for right in (-1, 0, 1):
            if torch.equal(view[..., 4:28, 4:28], image[..., 4 - down:28 - down, 4 - right:28 - right]):
                return down, right
    return None


@pytest.mark.parametrize("level, shifts", [(2, {(1, 1), (-1, -1)}), (3, {(1, 1), (-1, -1), (1, -1), (-1, 1)})])
def test_tta_levels_average_the_mirrored_diagonal_shifts_with_half_the_weight_on_the_image(level, shifts):
    from train.evaluate import tta_logits

    image = torch.randn(2, 3, 32, 32)
    model = ViewRecorder()
    weights = tta_logits(model, image, level)[0]
    views = [(_shift_of(view, image), "plain") if _shift_of(view, image) else (_shift_of(view.flip(-1), image), "mirror")
             for view in model.views]
    assert views[:2] == [((0, 0), "plain"), ((0, 0), "mirror")]
    assert {shift for shift, _ in views[2:]} == shifts and len(views) == 2 + 2 * len(shifts)
    assert sorted(kind for _, kind in views[2:]) == ["mirror"] * len(shifts) + ["plain"] * len(shifts)
    share = 0.5 / (2 * len(shifts))  # the shifted views split the other half evenly
    assert weights[:len(views)].tolist() == pytest.approx([0.25, 0.25] + [share] * (2 * len(shifts)))
    assert weights.sum().item() == pytest.approx(1.0)


def test_a_diverging_run_raises_with_the_reason(tiny_data):
    with pytest.raises(FloatingPointError, match="train_loss is nan at epoch 1"):
        train(tiny_config(optimizer="sgd", lr=1e30, grad_clip=0.0, epochs=1), data=tiny_data)


def test_sweep_train_reports_a_diverging_run_in_one_line(tiny_data_dir: Path):
    sets = [f"{key}={value}" for key, value in {**TINY, "optimizer": "sgd", "lr": 1e30, "grad_clip": 0.0,
                                                  "epochs": 1}.items()]
    args = ["train", "--model", PLUMBING_MODEL, "--data-dir", str(tiny_data_dir)]
    result = CliRunner().invoke(app, args + [arg for s in sets for arg in ("--set", s)])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: train_loss is nan at epoch 1"


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "onecycle"), ("nesterov", "linear"), ("adam", "constant"),
                                                ("adamw", "onecycle"), ("muon", "onecycle")])
def test_each_optimizer_and_schedule_trains(optimizer, schedule, tiny_data):
    lr = 1e-3 if optimizer.startswith("adam") else 0.05
    config = tiny_config(optimizer=optimizer, schedule=schedule, lr=lr, grad_clip=1.0, epochs=1,
                         label_smoothing=0.1, cutout=8, flip="random", train_size=64, val_size=0)
    result = train(config, data=tiny_data)
    assert math.isfinite(result.history[0].train_loss) and result.history[0].val_acc is None


@pytest.mark.parametrize("model", ["fast", "resnet9"])
def test_networks_train_on_the_smallest_low_resolution_images(model, tiny_data):
    config = tiny_config(model=model, epochs=2, low_res_size=12, low_res_epochs=1, train_size=64, val_size=32)
    result = train(config, data=tiny_data)
    assert len(result.history) == 2 and all(math.isfinite(h.val_loss) for h in result.history)


def test_bf16_autocast_runs_on_cpu(tiny_data):
    result = train(tiny_config(precision="bf16", epochs=1), data=tiny_data)
    assert result.precision == "bf16" and math.isfinite(result.history[0].train_loss)


@pytest.mark.parametrize("values,message", [
    ({"learning_rate": 0.1}, "unknown key 'learning_rate'; did you mean 'lr'?"),
    ({"batch_size": "big"}, "batch_size: Input should be a valid integer"),
    ({"batch_size": 1.5}, "batch_size: Input should be a valid integer"),
    ({"flip": "sideways"}, "flip: Input should be 'none', 'random' or 'alternating'"),
    ({"model": "vgg"}, "model: unknown model; known models: fast, fast-small, fast-wide, resnet9"),
    ({"epochs": 0}, "epochs: Input should be greater than 0"),
    ({"low_res_size": 8}, "low_res_size: Input should be greater than or equal to 12"),
])
def test_config_errors_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.resolve(values)


def test_recipes_fill_what_the_caller_leaves_out():
    assert TrainConfig.resolve({"model": "resnet9"}).optimizer == "nesterov"
    assert TrainConfig.resolve({"model": "fast"}).optimizer == "muon"
    assert TrainConfig.resolve({"model": "resnet9", "lr": 0.01}).lr == 0.01


def test_train_command_writes_json_and_a_summary(tiny_data_dir: Path, tmp_path: Path):
    out = tmp_path / "result.json"
    args = ["train", "--model", PLUMBING_MODEL, "--epochs", "1", "--data-dir", str(tiny_data_dir), "--json-out", str(out)]
    for key, value in TINY.items():
        if key != "epochs":
            args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["status"] == "finished" and len(saved["history"]) == 1
    assert "test accuracy" in result.stdout


def test_show_config_prints_the_resolved_settings_without_training(tmp_path: Path):
    result = CliRunner().invoke(app, ["train", "--model", "resnet9", "--set", "lr=0.05", "--show-config",
                                      "--data-dir", str(tmp_path / "absent")])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert rows["optimizer"] == "'nesterov'" and rows["lr"] == "0.05" and rows["schedule"] == "'onecycle'"


def test_muon_orthogonalises_in_bf16_only_where_the_device_has_it_natively():
    from train.optim import ns_dtype, orthogonalize

    cpu = torch.device("cpu")
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert ns_dtype("auto", cpu) == (torch.bfloat16 if native else torch.float32)
    assert ns_dtype("bf16", cpu) == torch.bfloat16 and ns_dtype("fp32", cpu) == torch.float32
    matrix = torch.randn(64, 216, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.bfloat16, torch.float32):
        update = orthogonalize(matrix, steps=5, dtype=dtype)
        assert update.dtype == torch.float32 and update.shape == matrix.shape
        singular = torch.linalg.svdvals(update)
        assert singular.min() > 0.5 and singular.max() < 1.5, (dtype, singular.min(), singular.max())
