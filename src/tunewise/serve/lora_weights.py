"""LoRA adapters as the engine holds them: the saved files read into per-layer (A, B, scaling).

peft writes `adapter_config.json` and `adapter_model.safetensors`; the engine does not wrap the
base model in peft (it batches requests for different adapters through one forward pass, see
backends/packed_forward.py), so it reads those two files itself. Everything peft's LoRA computes
at inference is honoured: per-module ranks and alphas (`rank_pattern`, `alpha_pattern`) and rsLoRA
scaling. Kinds that cannot be batched this way (DoRA, `modules_to_save`, adapters on the embeddings
or the output head, non-LoRA methods) are refused with a message that says to serve them merged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.serve.errors import ModelRefused

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.[\w-]+)?\.weight$")


@dataclass
class LoraAdapter:
    """An adapter ready for the forward pass: `layers[i][module] = (A [r, in], B [out, r], scaling)`."""

    layers: list[dict[str, tuple[Any, Any, float]]]
    rank: int
    nbytes: int


@dataclass
class HostAdapter:
    """An adapter in host memory: the raw bytes of its weights file as read from disk (turned into
    tensors in milliseconds), or, once it has been in the model tier, its tensors moved to host
    memory (on a CPU engine the very same tensors: demoting and promoting copy nothing)."""

    config: dict[str, Any]
    weights: bytes | None = None
    tensors: LoraAdapter | None = None

    @property
    def nbytes(self) -> int:
        return len(self.weights) if self.weights is not None else self.tensors.nbytes


def read_host_adapter(folder: Path, name: str) -> HostAdapter:
    """Read an adapter's two files; refuse one the engine cannot serve unmerged."""
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelRefused(f"{name}: {folder} holds no peft adapter ({CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ModelRefused(f"{name}: {config_path.name} is not valid JSON ({err.msg} at line {err.lineno})") from None
    check_servable(config, name)
    return HostAdapter(config=config, weights=weights_path.read_bytes())


def check_servable(config: dict[str, Any], name: str) -> None:
    hint = f"serve it merged instead (tunewise serve --merge {name})"
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise ModelRefused(f"{name}: a {peft_type or 'non-LoRA'} adapter cannot share a batch with others", hint=hint)
    if config.get("use_dora"):
        raise ModelRefused(f"{name}: DoRA adapters are not batched with others", hint=hint)
    if config.get("modules_to_save"):
        raise ModelRefused(f"{name}: the adapter replaces whole modules ({config['modules_to_save']})", hint=hint)
    if config.get("lora_bias"):
        raise ModelRefused(f"{name}: LoRA with a bias term is not batched with others", hint=hint)


def _pattern_value(patterns: dict[str, Any], module_path: str, default: Any) -> Any:
    # peft's own rule (peft.utils.other.get_pattern_key): a key matches a suffix of the module path.
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module_path):
            return value
    return default


def prepare_adapter(host: HostAdapter, name: str, num_layers: int, *, device: str, dtype: Any) -> LoraAdapter:
    """Turn host bytes into device tensors, scaling folded into nothing: kept apart so the
    arithmetic is peft's own (`lora_B(lora_A(x)) * scaling`)."""
    from safetensors.torch import load as load_safetensors

    if host.tensors is not None:  # demoted earlier: move back (a no-op on CPU)
        return to_device(host.tensors, device)
    tensors = load_safetensors(host.weights)
    pairs: dict[tuple[int, str], dict[str, Any]] = {}
    for key, tensor in tensors.items():
        match = _KEY.search(key)
        if match is None:
            raise ModelRefused(f"{name}: weight {key!r} is not a LoRA matrix of a decoder layer's linear module",
                               hint=f"serve it merged instead (tunewise serve --merge {name})")
        layer, module = int(match[1]), f"{match[2]}.{match[3]}"
        if layer >= num_layers:
            raise ModelRefused(f"{name}: weight {key!r} names layer {layer}, but the base model has {num_layers}")
        pairs.setdefault((layer, module), {})[match[4]] = tensor
    config = host.config
    alpha, rslora = float(config.get("lora_alpha", 8)), bool(config.get("use_rslora"))
    layers: list[dict[str, tuple[Any, Any, float]]] = [{} for _ in range(num_layers)]
    nbytes, rank = 0, 0
    for (layer, module), ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ModelRefused(f"{name}: layer {layer} {module} has lora_{''.join(ab)} without its pair")
        a = ab["A"].to(device=device, dtype=dtype).contiguous()
        b = ab["B"].to(device=device, dtype=dtype).contiguous()
        r = a.shape[0]
        path = f"model.layers.{layer}.{module}"
        module_alpha = float(_pattern_value(config.get("alpha_pattern") or {}, path, alpha))
        scaling = module_alpha / math.sqrt(r) if rslora else module_alpha / r
        layers[layer][module] = (a, b, scaling)
        nbytes += a.numel() * a.element_size() + b.numel() * b.element_size()
        rank = max(rank, r)
    if not pairs:
        raise ModelRefused(f"{name}: the adapter holds no LoRA weights")
    return LoraAdapter(layers=layers, rank=rank, nbytes=nbytes)


def to_device(adapter: LoraAdapter, device: str) -> LoraAdapter:
    """The adapter's tensors on `device` (the same object when they are there already)."""
    first = next((entry for layer in adapter.layers for entry in layer.values()), None)
    if first is None or str(first[0].device) == str(device) or (device == "cpu" and first[0].device.type == "cpu"):
        return adapter
    layers = [{name: (a.to(device), b.to(device), s) for name, (a, b, s) in layer.items()} for layer in adapter.layers]
    return LoraAdapter(layers=layers, rank=adapter.rank, nbytes=adapter.nbytes)


def adapter_rank(folder: Path) -> int:
    """The largest LoRA rank an adapter directory declares (for vLLM's max_lora_rank)."""
    config = json.loads((folder / CONFIG_FILE).read_text())
    ranks = [int(config.get("r", 8))] + [int(v) for v in (config.get("rank_pattern") or {}).values()]
    return max(ranks)
