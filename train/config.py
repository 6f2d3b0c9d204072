"""The one training configuration, from sweep YAML and CLI flags to `train()`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.registry import PARAMETER_CAP, REGISTRY, BudgetError, check_budget

DEFAULT_MODEL = "fast"

# Metrics the training function reports every epoch; a sweep may optimise any of them.
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second")
METRIC_GOALS = {"train_loss": "minimize", "train_acc": "maximize", "val_loss": "minimize", "val_acc": "maximize",
                "lr": None, "epoch_seconds": "minimize", "images_per_second": "maximize"}


# Settings that change how a run is executed or measured but not which weights it computes:
# a checkpoint stays resumable when only these differ. Every other key is pinned, new ones too.
# precision is here on purpose: weights and optimiser state are float32 under bf16 autocast as
# well, so it changes rounding, not the optimisation (like compile or channels_last, which pick
# other kernels); and "auto" resolves per device, so a preempted run must be able to resume on
# a box that resolves it differently. The loop notes when a resumed run's precision changed.
# muon_ns_precision likewise (the arithmetic of Muon's Newton-Schulz iteration).
# bn_calibration_images stays pinned: the last checkpoint holds the statistics it calibrated.
RESUME_FREE_KEYS = frozenset({"eval_batch_size", "tta", "tta_confidence", "precision", "muon_ns_precision",
                              "compile", "channels_last", "max_params"})


class ConfigError(ValueError):
    """An invalid training configuration; the message names the key."""


class TrainConfig(BaseModel):
    """Every hyperparameter of a run. Unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: str = Field(DEFAULT_MODEL, description="network from `sweep models`; its recipe fills unset keys")
    epochs: float = Field(10, gt=0, le=1000, description="passes over the training images; fractions allowed")
    batch_size: int = Field(512, ge=1, description="training images per optimisation step")
    optimizer: Literal["sgd", "nesterov", "adam", "adamw", "muon"] = Field(
        "nesterov", description="muon: Muon on conv filters, Nesterov SGD on the rest")
    lr: float = Field(0.1, gt=0, description="peak learning rate (Muon's, for the conv filters, with muon)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (Adam's beta1)")
    muon_momentum: float = Field(0.6, ge=0, lt=1, description="Muon's momentum (optimizer=muon)")
    muon_ns_steps: int = Field(3, ge=1, le=10, description="Newton-Schulz iterations orthogonalising each "
                                                          "Muon update")
    muon_renorm_every: int = Field(1, ge=1, description="Muon rescales each filter bank to a fixed norm "
                                                        "every this many steps")
    muon_ns_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="Newton-Schulz arithmetic; auto: bf16 where the device has it natively, else fp32")
    weight_decay: float = Field(5e-4, ge=0, description="as torch applies it; with muon, the per-step shrink "
                                                        "of non-filter weights at peak learning rate")
    bias_lr_scale: float = Field(1.0, gt=0, description="learning-rate multiplier for biases and BatchNorm")
    head_lr_scale: float = Field(1.0, gt=0, description="learning-rate multiplier for the classifier")
    grad_clip: float = Field(0.0, ge=0, description="max global gradient norm; 0 disables")
    schedule: Literal["onecycle", "linear", "constant"] = Field(
        "onecycle", description="onecycle: torch's OneCycleLR (cosine); linear: warm-up then linear decay")
    warmup: float = Field(0.3, ge=0, lt=1, description="fraction of steps spent rising to the peak rate")
    final_lr: float = Field(0.0, ge=0, le=1, description="linear schedule's end, as a fraction of the peak")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="of the training loss")
    translate: int = Field(4, ge=0, le=16, description="random-crop padding in pixels; 0 disables")
    flip: Literal["none", "random", "alternating"] = Field(
        "random", description="horizontal flips; alternating mirrors each image every other epoch")
    cutout: int = Field(0, ge=0, le=32, description="side of the zeroed square; 0 disables")
    brightness: float = Field(0.0, ge=0, le=2, description="random per-image brightness shift of up to this "
                                                         "many channel standard deviations; 0 disables")
    contrast: float = Field(0.0, ge=0, lt=1, description="random per-image contrast scale in [1-c, 1+c]; "
                                                        "0 disables")
    low_res_size: int = Field(32, ge=12, le=32, description="side of the training images in the first "
                                                           "low_res_epochs epochs (progressive resizing)")
    low_res_epochs: int = Field(0, ge=0, description="epochs trained at low_res_size before full size")
    low_res_mode: Literal["crop", "resize"] = Field(
        "crop", description="low-resolution images: a random crop, or the whole image scaled down")
    tta: Literal[0, 1, 2, 3] = Field(2, description="test-time augmentation: 0 none, 1 mirror, 2 mirror + two "
                                                   "diagonal one-pixel shifts, 3 mirror + all four")
    tta_confidence: float = Field(1.0, gt=0, le=1, description="TTA only for images whose plain-view top "
                                                              "probability is below this; 1: every image")
    whiten_bias_epochs: float = Field(3.0, ge=0, description="epochs the whitening bias trains before freezing")
    activation: Literal["gelu", "silu", "relu"] = Field("gelu", description="the network's nonlinearity")
    bn_momentum: float = Field(0.4, gt=0, le=1, description="BatchNorm running statistics: weight of each new "
                                                           "batch (torch's convention)")
    bn_calibration_images: int = Field(0, ge=0, description="after the last step, BatchNorm's running statistics "
                                                            "become a plain average over this many training "
                                                            "images (forward passes only); 0: keep the running ones")
    lookahead_every: int = Field(0, ge=0, description="every this many steps pull the weights towards their "
                                                     "running average (lookahead); 0 disables")
    lookahead_decay: float = Field(0.95, ge=0, lt=1, description="per-step decay of the lookahead average, "
                                                                "scaled by the cube of training progress")
    seed: int = Field(0, description="initialisation, shuffling and augmentation")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast where supported")
    channels_last: bool = Field(True, description="NHWC memory layout (faster convolutions)")
    compile: bool = Field(False, description="torch.compile the network (pays off on GPUs)")
    train_size: int | None = Field(None, ge=1, description="use only this many training images")
    val_size: int = Field(5000, ge=0, description="held-out validation images; 0 for final training")
    max_params: int = Field(PARAMETER_CAP, ge=1, le=PARAMETER_CAP)
    eval_batch_size: int = Field(1000, ge=1, description="images per batch when evaluating")

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in REGISTRY:
            raise ValueError(f"unknown model; known models: {', '.join(sorted(REGISTRY))}")
        return name

    @model_validator(mode="after")
    def _fits_budget(self) -> TrainConfig:
        # Checked here so a sweep rejects an over-budget model before any run starts.
        try:
            check_budget(self.model, self.max_params)
        except BudgetError as error:
            raise ValueError(str(error)) from None
        return self

    @classmethod
    def resolve(cls, values: Mapping[str, Any] | None = None) -> TrainConfig:
        """The model's recipe, overridden by `values`; raises ConfigError naming the key."""
        values = dict(values or {})
        name = values.get("model", DEFAULT_MODEL)
        recipe = REGISTRY[name].recipe if isinstance(name, str) and name in REGISTRY else {}
        try:
            return cls.model_validate({**recipe, **values})
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error)) from None

    def changed(self, **updates: Any) -> TrainConfig:
        return TrainConfig.resolve({**self.model_dump(), **updates})

    def network_options(self) -> dict[str, Any]:
        """Keyword arguments of the network's constructor that come from the configuration."""
        return {"activation": self.activation, "bn_momentum": self.bn_momentum}

    def trajectory_differences(self, saved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Pinned keys whose value in `saved` (a checkpoint's config) differs: key -> (saved, ours).

        A key the checkpoint predates counts as its default, so adding a switch whose default
        keeps the old behaviour leaves older checkpoints resumable."""
        ours = self.model_dump()
        defaults = {name: field.default for name, field in TrainConfig.model_fields.items()}
        differences = {}
        for key in sorted((set(saved) | set(ours)) - RESUME_FREE_KEYS):
            before, now = saved.get(key, defaults.get(key)), ours.get(key, "(absent)")
            if before != now:
                differences[key] = (before, now)
        return differences


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: `key: what is wrong (got value)`."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            from train.names import unknown_name_hint

            lines.append(f"unknown key '{key}'{unknown_name_hint(key, TrainConfig.model_fields, 'keys')}")
        elif not problem["loc"]:  # a check across fields; its message names them
            lines.append(problem["msg"].removeprefix("Value error, "))
        else:
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {message} (got {problem.get('input')!r})")
    return "; ".join(lines)
