"""`backend: vllm` against a real vLLM install, which lives in its own environment (vLLM pins its own
torch and transformers): runs when TUNEWISE_VLLM_PYTHON names that environment's interpreter."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

VLLM_PYTHON = os.environ.get("TUNEWISE_VLLM_PYTHON")
pytestmark = pytest.mark.skipif(not VLLM_PYTHON or not Path(VLLM_PYTHON).is_file(),
                                reason="no vLLM environment (set TUNEWISE_VLLM_PYTHON to its python)")


def test_vllm_backend_serves_names_routes_json_and_metrics(tokenizer, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.integration.serving.adapters import make_adapter_run

    torch.manual_seed(0)
    base = tmp_path / "tiny64"  # vLLM's CPU attention needs head_dim 64
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                                 eos_token_id=tokenizer.eos_token_id)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    home = tmp_path / "home"
    for seed in range(2):
        make_adapter_run(home / "runs", f"ad{seed}", base, seed=seed, r=8)
    src = Path(__file__).parents[3] / "src"
    env = {**os.environ, "TUNEWISE_HOME": str(home), "PYTHONPATH": f"{src}:{Path(__file__).parents[3]}",
           "VLLM_CPU_KVCACHE_SPACE": "1"}
    results = tmp_path / "results.json"
    subprocess.run([VLLM_PYTHON, str(Path(__file__).with_name("vllm_driver.py")), str(base), str(results)], env=env,
                   stdout=subprocess.DEVNULL, timeout=1200, check=True)
    out = json.loads(results.read_text())
    assert all(out[m]["status"] == 200 for m in ("tiny", "ad0", "ad1", "pair")), out
    assert out["ad0"]["text"] != out["ad1"]["text"] and out["pair"]["variant"] in ("ad0", "ad1")
    if out["json_finish"] == "stop":  # one cut short by max_tokens is incomplete, as with OpenAI
        assert json.loads(out["json"]) in ({"ok": True}, {"ok": False}), out["json"]
    else:
        assert out["json"].lstrip().startswith("{"), out["json"]
    assert out["unknown"] == 404 and out["metrics"]
