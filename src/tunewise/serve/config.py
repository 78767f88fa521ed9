"""The serving configuration: `tunewise serve` flags and the YAML `--config` file are the same fields.

    backend: transformers            # or vllm
    models: [smollm2-135m-instruct]  # base models: bundled names, directories, or name=directory
    merge: [support-bot]             # adapters served folded into their own copy of the base
    pin: [support-bot:4]             # adapters kept in the model tier
    prefetch: [faq-bot]              # adapters loaded at start
    routes: {support-bot: {variants: [{model: support-bot:3, weight: 90}, {model: support-bot:4, weight: 10}]}}
    adapter_cache: {model_mib: 1024, host_mib: 4096}
    max_running: 64
    step_tokens: 512
    kv_cache_mib: 4096
    max_model_len: 2048
    default_max_tokens: 256
    resolve_ttl_s: 10
    database_url: sqlite:////path/serving.db   # answers and feedback; default the workspace's
    vllm: {gpu_memory_utilization: 0.3, max_loras: 8, max_cpu_loras: 64, enforce_eager: true}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunewise.errors import SpecError
from tunewise.serve.ab import Route, parse_route, route_from_config

MIB = 1 << 20


class CacheSizes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_mib: int = Field(1024, ge=1, description="Adapters ready in the model tier (GPU memory on CUDA).")
    host_mib: int = Field(4096, ge=1, description="Adapter files kept in RAM for warm loads.")


class VllmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    max_loras: int = Field(8, ge=1, description="Adapters in one batch (vLLM's GPU slots).")
    max_cpu_loras: int = Field(64, ge=1, description="Adapters kept in host memory.")
    enforce_eager: bool = True
    extra: dict[str, Any] = Field(default_factory=dict, description="More vllm.EngineArgs, passed as they are.")


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str = Field("transformers", pattern="^(transformers|vllm)$")
    models: list[str] = Field(default_factory=list)
    merge: list[str] = Field(default_factory=list)
    pin: list[str] = Field(default_factory=list)
    prefetch: list[str] = Field(default_factory=list)
    routes: dict[str, Any] = Field(default_factory=dict)
    adapter_cache: CacheSizes = Field(default_factory=CacheSizes)
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")
    precision: str = Field("auto", pattern="^(auto|fp32|bf16|fp16)$")
    max_running: int = Field(64, ge=1, le=4096)
    step_tokens: int = Field(512, ge=16)
    kv_cache_mib: int = Field(4096, ge=16)
    max_model_len: int | None = Field(None, ge=16)
    default_max_tokens: int = Field(256, ge=1)
    resolve_ttl_s: float = Field(10.0, ge=0)
    registry: bool = True
    runs: bool = True
    database_url: str | None = None
    max_body_mib: int = Field(8, ge=1)
    vllm: VllmOptions = Field(default_factory=VllmOptions)

    def parsed_routes(self) -> list[Route]:
        return [route_from_config(name, section) for name, section in self.routes.items()]


def load_serve_config(path: Path | None = None, **overrides: Any) -> ServeConfig:
    """The YAML file (if any) with command-line values on top; errors name the field."""
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise SpecError(f"--config {path}: no such file") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise SpecError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
        if not isinstance(raw, dict):
            raise SpecError(f"{path}: expected a mapping of settings at the top level")
    routes = {**(raw.get("routes") or {}), **(overrides.pop("routes", None) or {})}
    for text in overrides.pop("route", None) or []:
        route = parse_route(text)
        routes[route.name] = route_to_dict(route)
    for key, value in overrides.items():
        if value is None or value == []:  # not given on the command line
            continue
        if key in ("models", "merge", "pin", "prefetch"):
            raw[key] = list(raw.get(key) or []) + list(value)
        else:
            raw[key] = value
    raw["routes"] = routes
    try:
        config = ServeConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"{path or 'serve options'}: {field}: {first['msg']}") from None
    config.parsed_routes()  # refuse bad routes at start, naming them
    return config


def route_to_dict(route: Route) -> dict[str, Any]:
    data = route.to_json()
    data.pop("name")
    return data
