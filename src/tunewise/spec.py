"""The job spec: the single source of truth for every option of a run.

YAML files, command-line overrides (`train.learning_rate=1e-4`) and later the REST API all
produce a `JobSpec`. Method-specific options live in each method's own config class
(tunewise.methods.*) and are validated there, so adding a method touches no code here.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunewise.errors import SpecError
from tunewise.eval.spec import EvalSpec
from tunewise.scale.resources import ResourcesSpec
from tunewise.spec_stages import stage_dicts
from tunewise.tracking import TrackingSpec

BUNDLED_MODEL = "smollm2-135m-instruct"
FORMAT_NAMES = ("alpaca", "chat", "sharegpt", "completion", "text", "preference", "prompt", "input_output")


RUN_NAME_MAX = 100
RUN_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{RUN_NAME_MAX - 1}}}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MixSpec(_Strict):
    """A general dataset mixed into training to limit forgetting."""

    path: str = Field(description="General-purpose dataset file (any supported format).")
    fraction: float = Field(
        0.05, gt=0, lt=1, description="Share of the training rows drawn from it; 0.05-0.10 is usual."
    )


class DataSpec(_Strict):
    train: str = Field(description="Training data file: .jsonl, .json, .csv or .parquet.")
    validation: str | None = Field(None, description="Validation file; if absent a held-out split is made.")
    format: Literal[FORMAT_NAMES] | None = Field(
        None, description="Force a format instead of detecting it."
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Held-out share when no validation file is given.")
    max_length: int = Field(1024, ge=8, le=131072, description="Longest example in tokens.")
    on_too_long: Literal["drop", "truncate"] = Field("drop", description="What to do with longer examples.")
    on_invalid: Literal["fail", "drop"] = Field(
        "fail", description="fail: stop on any invalid row; drop: skip it and list it in the report."
    )
    dedup: bool = Field(True, description="Remove exact and near duplicates before splitting.")
    near_dup_threshold: float = Field(0.9, gt=0, le=1, description="MinHash Jaccard threshold for near duplicates.")
    packing: bool = Field(True, description="Pack several examples into one sequence (labels stay per example).")
    mix: MixSpec | None = Field(None, description="Optional general data mixed in against forgetting.")


class TrainSpec(_Strict):
    epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float | None = Field(
        None, gt=0, le=1, description="Peak learning rate; default depends on the method (2e-5 full, 2e-4 LoRA)."
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warmup.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up.")
    micro_batch_size: int = Field(4, ge=1, description="Sequences per forward pass.")
    gradient_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    compile: bool | Literal["auto"] = Field(
        "auto", description="torch.compile each decoder layer: fuses the elementwise work around the matmuls. "
        "auto: on CPU with packed data, once the first steps show more than 10 minutes of training left. "
        "Supervised methods only.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(42, description="Seed for data order, initialisation and dropout.")
    eval_every_steps: int | None = Field(None, ge=1, description="Validation loss every N steps (default: at checkpoints).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA where supported, fp32 on CPU."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    memory_limit_gb: float | None = Field(
        None, gt=0, description="Plan against this much memory instead of all the device has free (leave room)."
    )


class CheckpointSpec(_Strict):
    dir: str | None = Field(None, description="Absolute path or fsspec URL (s3://...); a relative path is "
                            "inside the run directory. Default: <run>/checkpoints.")
    every_steps: int | None = Field(50, ge=1, description="Save every N optimizer steps.")
    every_minutes: float | None = Field(None, gt=0, description="Also save when this many minutes have passed.")
    keep_best: int = Field(1, ge=0, description="Keep the k best checkpoints by validation loss.")
    keep_last: int = Field(1, ge=1, description="Keep the n newest checkpoints.")

    @field_validator("dir")
    @classmethod
    def _stays_in_run_dir(cls, value: str | None) -> str | None:
        # A relative dir lives inside the run directory, whatever the current directory: a re-run
        # from elsewhere must find the same checkpoints, and '../' must not write outside the run.
        if value is None or "://" in value or Path(value).is_absolute():
            return value
        if "\0" in value or ".." in Path(value).parts:
            raise ValueError(f"{value!r} would leave the run directory; a relative dir is taken inside the run "
                             "directory: give an absolute path or a URL to keep checkpoints elsewhere")
        return value


class MethodSpec(BaseModel):
    """`name` picks a registered method; every other key is that method's own option."""

    model_config = ConfigDict(extra="allow")
    name: str = Field("lora", description="Adaptation method; `tunewise methods` lists them.")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class JobSpec(_Strict):
    name: str | None = Field(None, description="Run name (letters, digits, '.', '_', '-'); default derived from "
                             "the spec file and its content.")
    base_model: str = Field(BUNDLED_MODEL, description="Bundled name, local HF model directory or hub id.")
    method: MethodSpec = Field(default_factory=MethodSpec)
    data: DataSpec | None = Field(None, description="The training data; required unless every stage names its own.")
    train: TrainSpec = Field(default_factory=TrainSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Processes and machines the job "
                                     "trains on (docs/scale-out.md); one process by default.")
    stages: list[dict[str, Any]] | None = Field(
        None, description="Partial specs run in order as one job (e.g. lora, then dpo on its output); each may set "
        "name, method, data, train, checkpoint, eval, tracking over the top level. See docs/alignment.md.")

    @field_validator("name")
    @classmethod
    def _safe_run_name(cls, value: str | None) -> str | None:
        # The name becomes a directory under runs/ (and --restart deletes it): one plain path part only.
        if value is not None and not RUN_NAME.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not a run name: use 1-{RUN_NAME_MAX} letters, digits, '.', '_' "
                             "or '-', starting with a letter or digit (it names a directory under runs/)")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _method_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _shared_stage_data(cls, raw: Any) -> Any:
        # With stages, a top-level data section without `train` holds options every stage shares
        # (max_length, ...): it moves into the stages, where each stage's own data completes it.
        if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list):
            return raw
        data = raw.get("data")
        if not isinstance(data, dict) or "train" in data:
            return raw
        stages = [{**s, "data": {**data, **(s.get("data") or {})}} if isinstance(s, dict) else s for s in raw["stages"]]
        return {**{k: v for k, v in raw.items() if k != "data"}, "stages": stages}

    @model_validator(mode="after")
    def _check_method(self) -> JobSpec:
        from tunewise.methods import get_method

        method = get_method(self.method.name)  # raises SpecError naming the known methods
        try:
            method.config_class(**self.method.options())
        except ValidationError as err:
            raise ValueError("; ".join(problem_lines(err, prefix="method."))) from None
        return self

    @model_validator(mode="after")
    def _check_data_or_stages(self) -> JobSpec:
        if self.stages is None:
            if self.data is None:
                raise ValueError("data: a job spec needs data.train (the training file), or stages that name their data")
            return self
        for i, stage in enumerate(self.stage_specs(job_name=self.name or "job")):
            try:
                JobSpec.model_validate(stage)
            except ValidationError as err:
                raise ValueError("; ".join(problem_lines(err, prefix=f"stages[{i}]."))) from None
        return self

    def stage_specs(self, *, job_name: str) -> list[dict[str, Any]]:
        """One spec mapping per stage: the top level with the stage merged over it (see spec_stages)."""
        try:
            return stage_dicts(self.model_dump(mode="json", exclude_unset=True), job_name=job_name)
        except SpecError as err:
            raise ValueError(err.message) from None

    def method_config(self) -> Any:
        from tunewise.methods import get_method

        return get_method(self.method.name).config_class(**self.method.options())

    def resolved_learning_rate(self) -> float:
        from tunewise.methods import get_method

        return self.train.learning_rate or get_method(self.method.name).default_learning_rate

    def content_hash(self) -> str:
        """Stable short hash of the resolved spec (name excluded; resources too: they say how a run trains,
        not what it computes, so a run can resume on another number of processes)."""
        payload = self.model_dump(mode="json", exclude={"name", "resources"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading -------------------------------------------------------------------------------------


def problem_lines(err: ValidationError, *, prefix: str = "") -> list[str]:
    """`field: problem` per validation error; checks across fields already name their field."""
    lines = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}{field}: {message}" if field else f"{prefix}{message}")
    return lines


def _format_validation_error(err: ValidationError, source: str) -> str:
    return "\n".join([f"{source}: invalid job spec", *(f"  {line}" for line in problem_lines(err))])


def _parse_override_value(raw: str) -> Any:
    """YAML scalars (true, null, [a, b]); numbers like 1e-4 that YAML 1.1 leaves as strings become floats."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides to a nested dict; errors name the override."""
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"override {item!r} is not of the form key.path=value", hint="e.g. train.learning_rate=1e-4")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise SpecError(f"override {item!r} has an empty key")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if isinstance(child, str) and part == "method":
                child = node[part] = {"name": child}
            if not isinstance(child, dict):
                raise SpecError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_override_value(raw)
    return data


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None, *, raw: dict | None = None) -> JobSpec:
    """Load a job spec from YAML (or a dict), apply dotted overrides, validate, and warn on odd values."""
    source = str(path) if path else "spec"
    if raw is None:
        if path is None:
            raise SpecError("no job spec given")
        file = Path(path)
        if not file.is_file():
            raise SpecError(f"{file}: job spec not found")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise SpecError(f"{file}: not UTF-8 text (byte {err.start})") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{file}:{mark.line + 1}" if mark else str(file)
            raise SpecError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
        except RecursionError:
            raise SpecError(f"{file}: nested too deeply to be a job spec") from None
        if not isinstance(raw, dict):
            raise SpecError(f"{file}: a job spec must be a mapping of sections, got {type(raw).__name__}")
        raw = resolve_relative_paths(raw, file.parent)
    data = apply_overrides(dict(raw), overrides or [])
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_validation_error(err, source)) from None
    for message in spec_warnings(spec):
        warnings.warn(message, SpecWarning, stacklevel=2)
    return spec


class SpecWarning(UserWarning):
    """A value that is allowed but outside the usual range for its method."""


def resolve_relative_paths(raw: dict, base: Path) -> dict:
    """Make the file paths of a raw spec mapping relative to `base` (the spec file's folder), in place.

    Data files, the mix file, and the reward model and scoring-function files of PPO and GRPO are
    taken relative to the spec file, like includes in most tools; so are those inside `stages`.
    A path that exists only relative to the working directory is left as it is.
    """
    _resolve_data_paths(raw.get("data"), base)
    _resolve_method_paths(raw.get("method"), base)
    for stage in raw.get("stages") or []:
        if isinstance(stage, dict):
            _resolve_data_paths(stage.get("data"), base)
            _resolve_method_paths(stage.get("method"), base)
    return raw


def _spec_relative(value: Any, base: Path, *, must_exist: bool = False) -> Any:
    """`base / value` for a relative local path that exists there (or, unless must_exist, nowhere else)."""
    if not isinstance(value, str) or "://" in value or Path(value).is_absolute():
        return value
    candidate = base / value
    if candidate.exists() or (not must_exist and not Path(value).exists()):
        return str(candidate)
    return value


def _resolve_data_paths(data: Any, base: Path) -> None:
    if not isinstance(data, dict):
        return
    for key in ("train", "validation"):
        if key in data:
            data[key] = _spec_relative(data[key], base)
    mix = data.get("mix")
    if isinstance(mix, dict) and "path" in mix:
        mix["path"] = _spec_relative(mix["path"], base)


def _resolve_method_paths(method: Any, base: Path) -> None:
    if not isinstance(method, dict):
        return
    if "reward_model" in method:
        # A run name is looked up in the workspace, so only a folder next to the spec file is taken.
        method["reward_model"] = _spec_relative(method["reward_model"], base, must_exist=True)
    functions = method.get("reward_functions")
    if isinstance(functions, list):
        method["reward_functions"] = [_score_function_path(f, base) for f in functions]


def _score_function_path(name: Any, base: Path) -> Any:
    # `rules.py:fn` names a file; `package.module:fn` an importable module, which stays as it is.
    if not isinstance(name, str) or ":" not in name:
        return name
    module, _, function = name.rpartition(":")
    if not module.endswith(".py"):
        return name
    return f"{_spec_relative(module, base)}:{function}"


def spec_warnings(spec: JobSpec) -> list[str]:
    """Values outside the usual range for their method, each with the reason."""
    from tunewise.methods import get_method

    method = get_method(spec.method.name)
    out: list[str] = []
    lr = spec.train.learning_rate
    if lr is not None and method.usual_learning_rate is not None:
        low, high = method.usual_learning_rate
        if not low <= lr <= high:
            out.append(
                f"train.learning_rate={lr:g} is outside the usual {low:g}-{high:g} for {method.name}: "
                + method.learning_rate_reason
            )
    out.extend(method.check_options(spec.method_config()))
    if spec.train.compile is True and method.trainer is not None:
        out.append(f"train.compile is ignored by {method.name}: only the supervised training loop compiles its layers")
    return out
