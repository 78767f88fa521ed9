"""Serving on the bundled model: tunewise's engine against plain peft and vLLM, side by side.

    python bench/serving.py --full [--vllm-python /work/venvs/vllm/bin/python]

1. Throughput: N concurrent requests over 8 adapters, skewed prompt lengths, 32 new tokens each
   (end of sequence ignored on every side), in alternating rounds: tunewise (continuous batching,
   the engine's Python API), (a) peft `generate` one request at a time with `set_adapter`, (b) vLLM
   multi-LoRA in its own environment (TUNEWISE_VLLM_PYTHON or --vllm-python; skipped and said so
   when absent). Generated tokens/s and p95 time to first token (all requests arrive at once).
2. Scaling: 1, 8, 64 and 256 distinct adapters in the traffic, power-law popularity, an adapter
   budget in the model tier smaller than the set (32 adapters).
3. Memory: one base + 8 adapters in a fresh process, against 8 merged copies.
4. Adapter load: cold (disk, sha256 verified, to ready) and warm (host memory to ready), and the
   extra time to first token of a request whose adapter is cold.
"""

from __future__ import annotations

import os

# Every side (and the vLLM child, which inherits it) runs with idle OpenMP workers asleep rather than
# spinning, as `tunewise serve` does: on shared cores a spinning worker starves the serial work
# between kernels (a decode step measured 20x slower). Set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load_average, machine_info, parse_args  # noqa: E402
from _serving_setup import adapter_dirs, percentile, skewed_prompts, zipf_choices  # noqa: E402

BASE = "smollm2-135m-instruct"


def make_engine(base_dir: Path, adapters: dict[str, Path], *, model_mib: int = 1024, host_mib: int = 4096,
                manifests: bool = False) -> Any:
    from tunewise.registry.lineage import file_manifest
    from tunewise.serve.config import ServeConfig
    from tunewise.serve.engine import Engine
    from tunewise.serve.names import ResolvedModel

    config = ServeConfig(models=[f"{BASE}={base_dir}"], registry=False, runs=False,
                         adapter_cache={"model_mib": model_mib, "host_mib": host_mib}, max_running=64)
    engine = Engine(config)
    resolved = {name: ResolvedModel(id=name, base_dir=base_dir, adapter_dir=path, kind="bench",
                                    manifest=file_manifest(path) if manifests else None)
                for name, path in adapters.items()}
    engine.add_resolver(resolved.get)
    return engine


def tunewise_round(engine: Any, prompts: list[list[int]], models: list[str], new_tokens: int) -> dict[str, Any]:
    from tunewise.serve.generation import Selection
    from tunewise.serve.sampling import SamplingParams

    params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    started = time.perf_counter()
    generations = [engine.start(Selection(m, engine.names.resolve(m)), ids, params) for ids, m in zip(prompts, models)]
    for gen in generations:
        gen.wait(timeout=3600)
    seconds = time.perf_counter() - started
    generated = sum(g.completion_tokens for g in generations)
    ttft = [g.first_token_at - g.started for g in generations]
    return {"tokens_per_s": generated / seconds, "seconds": seconds, "generated": generated, "ttft_s": sorted(ttft)}


class PeftSide:
    """(a) What a user writes first: one PeftModel holding the adapters, one request at a time."""

    def __init__(self, base_dir: Path, adapters: list[Path]):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        self.model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name="a0")
        for i, path in enumerate(adapters[1:], start=1):
            self.model.load_adapter(str(path), adapter_name=f"a{i}")
        self.model.eval()

    def round(self, prompts: list[list[int]], adapter_of: list[int], new_tokens: int) -> dict[str, Any]:
        import torch

        started, first, generated = time.perf_counter(), [], 0
        for ids, adapter in zip(prompts, adapter_of):
            self.model.set_adapter(f"a{adapter}")
            streamer = _FirstToken()
            x = torch.tensor([ids])
            with torch.no_grad():
                out = self.model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                                          min_new_tokens=new_tokens, do_sample=False, streamer=streamer)
            first.append(streamer.at - started)
            generated += out.shape[1] - x.shape[1]
        seconds = time.perf_counter() - started
        return {"tokens_per_s": generated / seconds, "seconds": seconds, "generated": generated, "ttft_s": sorted(first)}


class _FirstToken:
    """A generate() streamer that notes when the first new token arrives (the first put is the prompt)."""

    def __init__(self) -> None:
        self.calls, self.at = 0, 0.0

    def put(self, _: Any) -> None:
        self.calls += 1
        if self.calls == 2:
            self.at = time.perf_counter()

    def end(self) -> None:
        pass


class VllmSide:
    def __init__(self, python: str, base_dir: Path, adapters: list[Path], prompts: list[list[int]],
                 adapter_of: list[int], new_tokens: int, rank: int):
        job = {"base": str(base_dir), "adapters": [str(a) for a in adapters], "prompts": prompts,
               "adapter_of_request": adapter_of, "new_tokens": new_tokens, "rank": rank, "max_loras": len(adapters)}
        self.job_file = Path(tempfile.mkstemp(suffix=".json")[1])
        self.job_file.write_text(json.dumps(job))
        env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "2"}
        env.pop("PYTHONPATH", None)  # vLLM's environment has its own torch and transformers
        self.proc = subprocess.Popen([python, str(REPO / "bench" / "_serving_vllm.py"), str(self.job_file)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"the vLLM side exited with {self.proc.wait()}")

    def round(self) -> dict[str, Any]:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self.job_file.unlink(missing_ok=True)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    ttfts = [t for r in rounds for t in r["ttft_s"]]
    return {"tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in rounds), "tokens_per_s": [round(r["tokens_per_s"], 2) for r in rounds],
            "ttft_p95_s": percentile(ttfts, 0.95), "ttft_p50_s": percentile(ttfts, 0.5),
            "load_average": [r.get("load_average") for r in rounds]}


def vllm_python(arg: str | None) -> str | None:
    candidate = arg or os.environ.get("TUNEWISE_VLLM_PYTHON") or "/work/venvs/vllm/bin/python"
    return candidate if Path(candidate).is_file() else None


def throughput(base_dir: Path, tokenizer: Any, full: bool, python: str | None) -> dict[str, Any]:
    n_requests, n_adapters, new_tokens, rounds = (16, 8, 32, 2) if full else (4, 2, 4, 1)
    adapters = adapter_dirs(base_dir, n_adapters, r=16, targets="all-linear", tag="r16-all-linear")
    prompts = skewed_prompts(tokenizer, n_requests, seed=1)
    adapter_of = [i % n_adapters for i in range(n_requests)]
    engine = make_engine(base_dir, {f"a{i}": p for i, p in enumerate(adapters)})
    models = [f"a{a}" for a in adapter_of]
    for name in {f"a{i}" for i in range(n_adapters)}:
        engine.prefetch(name).result()
    tunewise_round(engine, prompts[:2], models[:2], 2)  # warm-up
    peft_side = PeftSide(base_dir, adapters)
    vllm_side = None
    vllm_note = "vLLM not measured: no vLLM environment (give --vllm-python or TUNEWISE_VLLM_PYTHON)"
    if python:
        try:
            vllm_side = VllmSide(python, base_dir, adapters, prompts, adapter_of, new_tokens, rank=16)
            vllm_note = f"vLLM {vllm_side.info.get('vllm')} (vllm-cpu), engine loaded in {vllm_side.info['load_s']:.0f} s"
        except Exception as err:  # report the peer's absence, keep the other figures
            vllm_note = f"vLLM not measured: it failed to start ({err})"
    sides: dict[str, list[dict[str, Any]]] = {"tunewise": [], "peft": [], "vllm": []}
    for round_index in range(rounds):
        order = ["tunewise", "peft", "vllm"]
        order = order[round_index % 3:] + order[:round_index % 3]  # rotate who goes first
        for side in order:
            load = load_average()
            if side == "tunewise":
                result = tunewise_round(engine, prompts, models, new_tokens)
            elif side == "peft":
                result = peft_side.round(prompts, adapter_of, new_tokens)
            elif vllm_side is not None:
                result = vllm_side.round()
            else:
                continue
            result["load_average"] = load
            sides[side].append(result)
            print(f"round {round_index + 1} {side}: {result['tokens_per_s']:.1f} tokens/s (load {load})", flush=True)
    if vllm_side is not None:
        vllm_side.close()
    profile = profile_steps(engine, prompts, models, new_tokens) if full else None
    engine.close()
    import statistics

    out = {name: summarize(rs) for name, rs in sides.items() if rs}
    ratios = {}
    for peer in ("peft", "vllm"):
        if peer in out:
            pairs = [t["tokens_per_s"] / p["tokens_per_s"] for t, p in zip(sides["tunewise"], sides[peer])]
            ratios[peer] = {"median": statistics.median(pairs), "rounds": [round(x, 2) for x in pairs]}
    return {"requests": n_requests, "adapters": n_adapters, "new_tokens": new_tokens, "rounds": rounds,
            "prompt_tokens": sorted(len(p) for p in prompts), "sides": out, "ratios": ratios, "vllm_note": vllm_note,
            "profile": profile}


def profile_steps(engine: Any, prompts: list[list[int]], models: list[str], new_tokens: int) -> dict[str, Any]:
    """Where a round's time goes: the same work driven step by step on this thread (the batcher's
    forward passes, with every prompt prefilled at once), timed per phase; three decode steps
    profiled per operator."""
    from torch.profiler import ProfilerActivity, profile

    from tunewise.serve.backends.packed_forward import Chunk

    loaded = engine.backend.models()[0]
    runner, cache = loaded.runner, loaded.adapters
    adapters = {m: cache.acquire(engine.names.resolve(m)) for m in set(models)}
    caches = [runner.new_cache(len(p) + new_tokens + 4) for p in prompts]
    started = time.perf_counter()
    runner.forward([Chunk(c, p, adapters[m], True) for c, p, m in zip(caches, prompts, models)])
    prefill_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(new_tokens - 1):
        runner.forward([Chunk(c, [7], adapters[m], True) for c, m in zip(caches, models)])
    decode_s = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU]) as prof:  # a few steps: a whole round's events fill RAM
        for _ in range(3):
            runner.forward([Chunk(c, [7], adapters[m], True) for c, m in zip(caches, models)])
    for model in set(models):
        cache.release(engine.names.resolve(model))
    table = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in table) or 1
    rows = sorted(table, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    return {"prefill_s": prefill_s, "decode_s": decode_s, "decode_step_ms": 1000 * decode_s / max(1, new_tokens - 1),
            "prompt_tokens": sum(len(p) for p in prompts),
            "ops": [{"op": e.key, "self_cpu_share": round(e.self_cpu_time_total / total, 3), "calls": e.count}
                    for e in rows]}


def scaling(base_dir: Path, tokenizer: Any, full: bool) -> dict[str, Any]:
    counts, n_requests, new_tokens = ((1, 8, 64, 256), 32, 32) if full else ((1, 4), 4, 4)
    adapters = adapter_dirs(base_dir, max(counts), r=8, targets=["q_proj", "v_proj"], tag="r8-qv")
    one_mib = sum(f.stat().st_size for f in adapters[0].iterdir()) / 2**20
    budget_mib = max(1, int(32 * one_mib))  # the model tier holds 32 of them
    prompts = skewed_prompts(tokenizer, n_requests, seed=2)
    rows = []
    for count in counts:
        engine = make_engine(base_dir, {f"s{i}": p for i, p in enumerate(adapters[:count])}, model_mib=budget_mib,
                             host_mib=4 * budget_mib)
        picks = zipf_choices(n_requests, count, seed=count)
        tunewise_round(engine, prompts[:2], [f"s{picks[0]}"] * 2, 2)  # warm-up (base, first adapter)
        load = load_average()
        result = tunewise_round(engine, prompts, [f"s{p}" for p in picks], new_tokens)
        stats = engine.backend.models()[0].adapters.stats()
        engine.close()
        rows.append({"adapters": count, "distinct_in_traffic": len(set(picks)), "tokens_per_s": result["tokens_per_s"],
                     "ttft_p95_s": percentile(result["ttft_s"], 0.95), "load_average": load,
                     "model_tier_loaded": stats["model"]["loaded"]})
        print(f"scaling {count}: {result['tokens_per_s']:.1f} tokens/s", flush=True)
    first = rows[0]["tokens_per_s"]
    for row in rows:
        row["vs_one"] = row["tokens_per_s"] / first
    return {"requests": n_requests, "new_tokens": new_tokens, "model_tier_mib": budget_mib,
            "adapter_mib": round(one_mib, 2), "rows": rows}


def memory(full: bool) -> dict[str, Any]:
    """In a fresh process: RSS growth for the base plus 8 adapters, against their own bytes."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child"] + (["--full"] if full else [])
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, cwd=REPO).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def memory_child() -> None:
    import torch

    from _common import current_rss_mib
    from tunewise.models import resolve_base_model

    base_dir = resolve_base_model(BASE)
    adapters = adapter_dirs(base_dir, 8, r=16, targets="all-linear", tag="r16-all-linear")
    _page_in_runtime()  # library code and allocator arenas are not the model's memory
    before = current_rss_mib()
    engine = make_engine(base_dir, {f"a{i}": p for i, p in enumerate(adapters)})
    loaded = engine.backend.loaded_for(engine.names.resolve(BASE), BASE)
    tunewise_round(engine, [[1, 2, 3]], [BASE], 1)  # touch every weight page (loading maps them lazily)
    after_base = current_rss_mib()
    for i in range(8):
        engine.prefetch(f"a{i}").result()
    after_adapters = current_rss_mib()
    base_bytes = sum(p.numel() * p.element_size() for p in loaded.runner.model.parameters())
    adapter_bytes = sum(r.adapter.nbytes for r in loaded.adapters._model.values())
    host_bytes = loaded.adapters.stats()["host"]["bytes"]
    expected_mib = (base_bytes + adapter_bytes) / 2**20
    grown = after_adapters - before
    print(json.dumps({"base_mib": base_bytes / 2**20, "adapters_mib": adapter_bytes / 2**20,
                      "host_tier_mib": host_bytes / 2**20, "rss_growth_mib": grown,
                      "rss_base_mib": after_base - before, "rss_adapters_mib": after_adapters - after_base,
                      "expected_mib": expected_mib, "over_expected": grown / expected_mib - 1,
                      "eight_merged_mib": 8 * base_bytes / 2**20}))
    engine.close()


def _page_in_runtime() -> None:
    """Run a tiny Llama through the same engine once, so the RSS baseline already holds the kernels'
    code pages and the allocator's arenas (tens of MiB that would otherwise count as model memory)."""
    import tempfile

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(tempfile.mkdtemp())
    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer

    tokenizer = load_tokenizer(resolve_base_model(BASE))
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 tie_word_embeddings=True)).to(torch.float32).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    engine = make_engine(folder, {})
    engine.backend.loaded_for(engine.names.resolve(BASE), BASE)
    tunewise_round(engine, [[1, 2, 3]], [BASE], 2)
    engine.close()


def adapter_loads(base_dir: Path, tokenizer: Any, full: bool) -> dict[str, Any]:
    count = 20 if full else 3
    adapters = adapter_dirs(base_dir, count, r=16, targets="all-linear", tag="r16-load")
    engine = make_engine(base_dir, {f"l{i}": p for i, p in enumerate(adapters)}, manifests=True,
                         model_mib=1, host_mib=4096)  # a one-adapter model tier: every switch is a load
    cache = engine.backend.loaded_for(engine.names.resolve(BASE), BASE).adapters
    prompt = skewed_prompts(tokenizer, 1, seed=3)[0]
    warm_ttft = tunewise_round(engine, [prompt], ["l0"], 1)["ttft_s"][0]  # base loaded, l0 ready
    resident = tunewise_round(engine, [prompt], ["l0"], 1)["ttft_s"][0]
    cold_ttft = [tunewise_round(engine, [prompt], [f"l{i}"], 1)["ttft_s"][0] for i in range(1, count)]
    cold = [e["seconds"] for e in cache.load_log if e["from"] == "disk"]
    for i in range(1, count):  # in host memory now: warm loads
        engine.prefetch(f"l{i}").result()
    warm = [e["seconds"] for e in cache.load_log if e["from"] == "host"]
    engine.close()
    adapter_mib = sum(f.stat().st_size for f in adapters[0].iterdir()) / 2**20
    return {"adapters": count, "adapter_mib": round(adapter_mib, 1), "cold_p95_s": percentile(cold, 0.95),
            "cold_p50_s": percentile(cold, 0.5), "warm_p95_s": percentile(warm, 0.95),
            "warm_p50_s": percentile(warm, 0.5), "ttft_resident_s": resident, "ttft_first_s": warm_ttft,
            "ttft_cold_p50_s": percentile(cold_ttft, 0.5), "extra_ttft_cold_s": percentile(cold_ttft, 0.5) - resident}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], lambda p: (
        p.add_argument("--vllm-python", help="Interpreter of an environment with vLLM (default: TUNEWISE_VLLM_PYTHON)."),
        p.add_argument("--memory-child", action="store_true", help=os.devnull and "internal"),
        p.add_argument("--only", help="Comma-separated: throughput, scaling, memory, loads")))
    if args.memory_child:
        memory_child()
        return
    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer

    base_dir = resolve_base_model(BASE)
    tokenizer = load_tokenizer(base_dir)
    parts = args.only.split(",") if args.only else ["throughput", "scaling", "memory", "loads"]
    result: dict[str, Any] = {"command": "python bench/serving.py" + (" --full" if args.full else ""),
                              "machine": machine_info()}
    if "throughput" in parts:
        result["throughput"] = throughput(base_dir, tokenizer, args.full, vllm_python(args.vllm_python))
    if "scaling" in parts:
        result["scaling"] = scaling(base_dir, tokenizer, args.full)
    if "memory" in parts:
        result["memory"] = memory(args.full)
    if "loads" in parts:
        result["loads"] = adapter_loads(base_dir, tokenizer, args.full)
    if args.full and args.only:  # a partial run updates the parts it ran
        from _common import RESULTS

        previous = RESULTS / "serving.json"
        if previous.is_file():
            result = {**json.loads(previous.read_text()), **result}
            result.pop("benchmark", None)
    emit("serving", result, write=args.full)


if __name__ == "__main__":
    main()
