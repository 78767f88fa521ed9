"""The vLLM side of bench/serving.py, run by the interpreter of vLLM's own environment.

    <vllm python> bench/_serving_vllm.py job.json      # then one line per command on stdin: "run" or "quit"

Loads the base with multi-LoRA (the same adapters, the same prompt token ids), warms every adapter
up, prints {"ready": ...}, then answers each "run" with one JSON line: generated tokens/s and time to
first token of one round (all requests arrive at once). vLLM's engine runs in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0), so it takes no CPU while the other sides are measured.
"""

from __future__ import annotations

import json
import os
import sys
import time


def one_round(engine, job, tag):
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    params = SamplingParams(max_tokens=job["new_tokens"], temperature=0.0, ignore_eos=True)
    started = time.perf_counter()
    first: dict[str, float] = {}
    for i, (ids, adapter) in enumerate(zip(job["prompts"], job["adapter_of_request"])):
        lora = LoRARequest(f"a{adapter}", adapter + 1, job["adapters"][adapter])
        engine.add_request(f"{tag}-{i}", {"prompt_token_ids": ids}, params, lora_request=lora)
    generated = 0
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.request_id not in first and output.outputs and output.outputs[0].token_ids:
                first[output.request_id] = time.perf_counter() - started
            if output.finished:
                generated += len(output.outputs[0].token_ids)
    seconds = time.perf_counter() - started
    return {"tokens_per_s": generated / seconds, "seconds": seconds, "generated": generated,
            "ttft_s": sorted(first.values())}


def main() -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    job = json.loads(open(sys.argv[1]).read())
    import vllm
    from vllm import EngineArgs, LLMEngine

    args = EngineArgs(model=job["base"], enable_lora=True, max_loras=job["max_loras"], max_cpu_loras=job["max_loras"],
                      max_lora_rank=job["rank"], gpu_memory_utilization=0.3, enforce_eager=True, dtype="float32",
                      max_model_len=2048, max_num_seqs=max(16, len(job["prompts"])))
    started = time.perf_counter()
    engine = LLMEngine.from_engine_args(args)
    load_s = time.perf_counter() - started
    one_round(engine, {**job, "new_tokens": 2}, "warmup")  # loads every adapter
    print(json.dumps({"ready": True, "vllm": vllm.__version__, "load_s": load_s}), flush=True)
    count = 0
    for line in sys.stdin:
        if line.strip() != "run":
            break
        count += 1
        print(json.dumps(one_round(engine, job, f"round{count}")), flush=True)


if __name__ == "__main__":
    main()
