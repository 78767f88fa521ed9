"""The default backend: transformers models, our packed forward pass, continuous batching (CPU, CUDA).

One copy of each base model is loaded; its adapters live in an AdapterCache and share its batch.
A merged model (`--merge NAME`) is a separate copy with the adapter folded into the weights,
batched on its own, so merged and unmerged models are served side by side.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.serve.adapter_cache import AdapterCache
from tunewise.serve.backends.packed_forward import PackedForward
from tunewise.serve.batching import Batcher, Request
from tunewise.serve.errors import ModelRefused
from tunewise.serve.lora_weights import prepare_adapter
from tunewise.serve.metrics import CacheMetrics, EngineMetrics
from tunewise.serve.names import ResolvedModel


@dataclass
class BackendOptions:
    device: str = "auto"
    precision: str = "auto"
    adapter_model_bytes: int = 1 << 30  # adapters ready in the model tier
    adapter_host_bytes: int = 4 << 30  # adapters' files kept in RAM
    max_running: int = 64  # choices decoded together
    step_tokens: int = 512  # tokens per forward pass (decodes first, then prompt chunks)
    kv_cache_bytes: int = 4 << 30  # key/value caches of the running requests, per model


@dataclass
class LoadedModel:
    label: str  # the `model` metric label
    runner: PackedForward
    batcher: Batcher
    adapters: AdapterCache | None
    max_length: int


class TransformersBackend:
    name = "transformers"

    def __init__(self, options: BackendOptions, metrics: EngineMetrics):
        from tunewise.models.device import resolve_device_policy

        self.options = options
        self.policy = resolve_device_policy(options.device, options.precision)
        self.metrics = metrics
        self._models: dict[str, LoadedModel] = {}  # by base directory, or "merged:<adapter dir>"
        self._lock = threading.Lock()

    # --- models ---------------------------------------------------------------------------------

    def loaded_for(self, model: ResolvedModel, label: str) -> LoadedModel:
        """The loaded model that serves `model`: its merged copy if there is one, else its base
        (loaded now if it is the first request for that base)."""
        merged = self._models.get(f"merged:{model.cache_key}")
        if merged is not None:
            return merged
        key = str(model.base_dir)
        with self._lock:
            if key not in self._models:
                self._models[key] = self._load_base(model.base_dir, label)
            return self._models[key]

    def is_merged(self, model: ResolvedModel) -> bool:
        return f"merged:{model.cache_key}" in self._models

    def _load_base(self, base_dir: Path, label: str) -> LoadedModel:
        from tunewise.models.load import load_causal_lm

        try:
            model = load_causal_lm(base_dir, self.policy).eval()
        except Exception as err:
            raise ModelRefused(f"base model {base_dir} could not be loaded ({type(err).__name__}: {err})") from None
        return self._wrap(model, label, with_adapters=True)

    def load_merged(self, model: ResolvedModel, label: str) -> None:
        """Fold `model`'s adapter into a copy of its base and serve that copy for `model`."""
        from peft import PeftModel

        from tunewise.models.load import load_causal_lm

        if model.adapter_dir is None:
            raise ModelRefused(f"--merge {model.id}: it is not an adapter; a full model is served as it is")
        if model.manifest:
            from tunewise.registry import verify_files

            problems = verify_files(model.adapter_dir, model.manifest)
            if problems:
                raise ModelRefused(f"{model.id} was changed after registration ({'; '.join(problems[:3])})")
        base = load_causal_lm(model.base_dir, self.policy)
        merged = PeftModel.from_pretrained(base, str(model.adapter_dir)).merge_and_unload().eval()
        self._models[f"merged:{model.cache_key}"] = self._wrap(merged, label, with_adapters=False)

    def _wrap(self, model: Any, label: str, *, with_adapters: bool) -> LoadedModel:
        o = self.options
        runner = PackedForward(model)
        adapters = None
        if with_adapters:
            adapters = AdapterCache(
                lambda host, name: prepare_adapter(host, name, runner.num_layers, device=str(runner.device),
                                                   dtype=runner.dtype),
                model_budget_bytes=o.adapter_model_bytes, host_budget_bytes=o.adapter_host_bytes,
                metrics=CacheMetrics(self.metrics, label))
        batcher = Batcher(runner, adapters, max_running=o.max_running, step_tokens=o.step_tokens,
                          cache_budget_bytes=o.kv_cache_bytes, name=label)
        if adapters is not None:
            adapters._on_ready = batcher.wake
        return LoadedModel(label, runner, batcher, adapters, runner.max_positions)

    # --- requests -------------------------------------------------------------------------------

    def submit(self, loaded: LoadedModel, request: Request) -> None:
        loaded.batcher.submit(request)

    def prefetch(self, model: ResolvedModel, label: str, *, pin: bool = False) -> Any:
        loaded = self.loaded_for(model, label)
        if loaded.adapters is None or not model.is_adapter:
            return None
        return loaded.adapters.prefetch(model, pin=pin)

    def tier(self, model: ResolvedModel) -> str | None:
        """model | host | disk for an adapter of a loaded base; "merged" or "loaded" for models;
        None when its base is not loaded."""
        if self.is_merged(model):
            return "merged"
        loaded = self._models.get(str(model.base_dir))
        if loaded is None:
            return None
        if not model.is_adapter:
            return "loaded"
        return loaded.adapters.tier(model.cache_key) if loaded.adapters else None

    def in_flight(self, model: ResolvedModel) -> int:
        return sum(m.batcher.in_flight(model.cache_key) for m in self._models.values())

    def publish_queue_metrics(self) -> None:
        for loaded in self._models.values():
            running, waiting = loaded.batcher.counts()
            self.metrics.queue(loaded.label, running, waiting)

    def models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def close(self) -> None:
        for loaded in self._models.values():
            loaded.batcher.stop()
            if loaded.adapters is not None:
                loaded.adapters.close()
