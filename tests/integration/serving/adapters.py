"""Tiny LoRA adapters and registered versions for the serving tests, on the tiny random Llama."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_FACTORY = Path(__file__).parents[2] / "unit" / "eval" / "runfactory.py"


def runfactory() -> Any:
    if "runfactory" not in sys.modules:
        spec = importlib.util.spec_from_file_location("runfactory", _FACTORY)
        module = importlib.util.module_from_spec(spec)
        sys.modules["runfactory"] = module
        spec.loader.exec_module(module)
    return sys.modules["runfactory"]


def make_adapter_run(runs_root: Path, name: str, base_dir: Path, *, seed: int, r: int = 4, noise: float = 0.4,
                     targets: Any = "all-linear") -> Path:
    """A finished run whose artifact is a LoRA adapter with random, non-zero A and B (so it answers
    differently from the base and from other adapters), registrable like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunewise.models.artifact import write_artifact_info

    torch.manual_seed(seed)
    run_dir = runs_root / name
    artifact = run_dir / "artifact"
    artifact.mkdir(parents=True)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, lora_dropout=0.0,
                                            task_type="CAUSAL_LM"))
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(0.0, noise)
    model.save_pretrained(artifact)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(artifact)
    write_artifact_info(artifact, method="lora", adapter=True, base_model=str(base_dir), base_model_dir=str(base_dir))
    runfactory().write_run_files(run_dir, base_model=str(base_dir), method="lora")
    return run_dir


def pass_gate(run_dir: Path, base_dir: Path) -> None:
    """Give a run a passed evaluation gate, so its registered version may become production."""
    from tunewise.eval import run_gate, write_results
    from tunewise.eval.report import EvalReport

    report = EvalReport(run=run_dir.name, created_at="now", base_model=str(base_dir), method="lora",
                        metrics={"exact_match": 0.9}, base_metrics={"exact_match": 0.1})
    write_results(run_dir, report, run_gate(report, {"exact_match": ">= 0.8"}))
