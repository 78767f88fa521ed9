"""BENCHMARKS.md from bench/results/*.json: one section per benchmark, each with its command,
machine and load average, then the GPU reference figures still to be measured here."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import RESULTS

HEADER = """# Benchmarks

Written by `python bench/run_all.py --full` (each section: `python bench/<name>.py --full`); the
JSON behind every figure is in `bench/results/`. The machine is shared: each figure carries the
1-minute load average when it was taken (a training benchmark's own two threads make a load of
about 2 on this 2-core machine; well above that, other work was competing and the figure is low). `python bench/<name>.py` without `--full` is a quick smoke run.
"""

TORCHTUNE = """Published reference, for scale only (other GPU, other settings): torchtune's table for Llama 3.1 8B
on one RTX 4090 (24 GB): full 1650 tokens/s at 18.9 GiB, LoRA 3083 tokens/s at 16.2 GiB, QLoRA
2413 tokens/s at 7.4 GiB. *Not measured here.*"""

GPU_NOT_RUN = f"""## On a GPU

Not run yet: `python bench/gpu.py --full` on a CUDA machine. {TORCHTUNE}
"""


def gpu(r: dict[str, Any]) -> str:
    t = r["throughput"]
    size = r["size"]
    sides = ["| side | real tokens/s | padding | MFU (bf16 peak) |", "| --- | ---: | ---: | ---: |"]
    for name in ("tunewise", "baseline"):
        s = t[name]
        sides.append(f"| {name} | **{s['tokens_per_s']:,}** | {s['padding_fraction']:.0%} | {s['mfu']:.1%} |")
    modes = ["| model (random weights) | mode | gradient checkpointing | micro-batch x length | real tokens/s | "
             "peak allocated | planner estimate |", "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    for model, rows in (("SmolLM2-135M shape", r["small_modes"]), ("Llama 3.1 8B shape", r.get("big_modes", []))):
        for m in rows:
            modes.append(f"| {model} | {m['mode']} | {'on' if m.get('gradient_checkpointing') else 'off'} | "
                         f"{m['micro_batch']} x {m['max_length']} | **{m['tokens_per_s']:,.0f}** | "
                         f"**{m['peak_allocated_mib'] / 1024:.1f} GiB** | {m['planner_peak_mib'] / 1024:.1f} GiB |")
    full = r.get("big_full_planned")
    full_line = (f"Full fine-tuning of the 8B shape was not run: the planner puts its peak at "
                 f"{full['planner_peak_mib'] / 1024:.1f} GiB (AdamW states alone 44.9 GiB) against "
                 f"{full['available_mib'] / 1024:.1f} GiB on the card, and `tunewise train` would refuse it.") if full else ""
    return f"""## On a GPU: {r['machine'].get('gpu')}

{_meta(r)}

bf16 weights and compute (tunewise's device policy on CUDA), bitsandbytes 4-bit NF4 for QLoRA,
peak memory from `torch.cuda.max_memory_allocated` (so without the CUDA context, which the
planner's estimate includes, with about 0.8-1.8 GiB of framework overhead). The weights are
random, built on the machine from the bundled model's config and tokenizer
(`bench/_random_model.py`): speed and memory depend on a model's shape, not on its values. A bf16
8192^3 matmul ran at {r['bf16_matmul_peak_tflops']} TFLOP/s.

**Throughput against the TRL baseline** (SmolLM2-135M shape, LoRA r=16, batch {size['batch']}, max length
{size['max_length']}, {size['steps']} steps, the same data and scripts as the CPU benchmark, MLflow off on
this machine): **tunewise / baseline = {t['ratio']}x**. A model this small leaves an H100 nearly idle
(MFU around 1%), so the figure measures per-step overheads and wasted padding, not the GPU.

{chr(10).join(sides)}

**Tokens/s and peak memory per mode** ({size['steps']} steps for the small shape, {size['big_steps']} for the 8B
shape; the mean over steps 2..N):

{chr(10).join(modes)}

{full_line}

{TORCHTUNE}
"""


def _machine(m: dict[str, Any]) -> str:
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['ram_gib']} GiB RAM{gpu}; "
            f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, peft {m['peft']}, "
            f"trl {m.get('trl')}")


def _meta(r: dict[str, Any]) -> str:
    when = r.get("_written", "")
    return f"Command: `{r['command']}` ({when}). Machine: {_machine(r['machine'])}."


def _probe_range(side: dict[str, Any]) -> str:
    probes = side.get("matmul_probes_gflops_per_s") or []
    return f"{min(probes):.0f}-{max(probes):.0f}" if probes else "n/a"


def _drift_note(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A warning when the host's matmul rate moved between sides: their tokens/s then do not compare."""
    peaks = {name: s["matmul_peak_gflops_per_s"] for name, s in rows}
    low, high = min(peaks.values()), max(peaks.values())
    if high <= 1.15 * low:
        return ""
    listed = ", ".join(f"{name} {peak:.0f}" for name, peak in peaks.items())
    return (f"\n*The host's sustained matmul rate changed between sides ({listed} GFLOP/s): this VM shares its "
            "cores, and their speed moves with the neighbours' load. Ratios of tokens/s between sides run at "
            "different rates mislead; each side's MFU, against its own rate, does not.*\n")


def _history() -> str:
    """Every full run on record (bench/results/throughput_history.jsonl), newest last."""
    path = RESULTS / "throughput_history.jsonl"
    if not path.exists():
        return ""
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(runs) < 2:
        return ""
    cell = lambda s: f"{s['tokens_per_s']} ({s['mfu']:.0%} of {s['matmul_peak_gflops_per_s']:.0f})" if s else "-"
    lines = ["\n**All full runs on record** (real tokens/s, with MFU of the matmul rate in GFLOP/s, per side; "
             "the host's rate is what moves). Earlier rounds took the rate from probes just before and after "
             "training; since the probes between steps, the rate is the run's own:\n",
             "| when | MFU against the rate | tunewise | tunewise, compiled | baseline (TRL) |",
             "| --- | --- | ---: | ---: | ---: |"]
    for run in runs:
        lines.append(f"| {run['when']} | {run.get('rate', 'before/after training')} | {cell(run.get('tunewise'))} | "
                     f"{cell(run.get('tunewise_compiled'))} | {cell(run.get('baseline'))} |")
    return "\n".join(lines) + "\n" + _pooled_rate_note([r for r in runs if r.get("rate") == "between steps"])


SIDES = ("tunewise", "tunewise_compiled", "baseline")


def _pooled_rate_note(rounds: list[dict]) -> str:
    """MFU medians against each side's own probes and against the mean of all three sides' probes in
    the round: if one side's probes read low for a reason of its own, its MFU reads high against them."""
    rounds = [r for r in rounds if all(r.get(side) for side in SIDES)]
    if len(rounds) < 3:
        return ""

    def medians(side: str) -> tuple[float, float]:
        own = [r[side]["mfu"] for r in rounds]
        pooled = [r[side]["mfu"] * r[side]["matmul_peak_gflops_per_s"]
                  / statistics.mean(r[s]["matmul_peak_gflops_per_s"] for s in SIDES) for r in rounds]
        return statistics.median(own), statistics.median(pooled)

    (eager, eager_pooled), (compiled, compiled_pooled) = medians("tunewise"), medians("tunewise_compiled")
    lower = sum(r["tunewise_compiled"]["matmul_peak_gflops_per_s"] < r["tunewise"]["matmul_peak_gflops_per_s"]
                for r in rounds)
    return (f"\nOver the {len(rounds)} rounds with probes between steps, the median MFU against each side's own "
            f"probes is {eager:.0%} eager and {compiled:.0%} compiled; against the mean of the three sides' probes "
            f"in the same round it is {eager_pooled:.0%} and {compiled_pooled:.0%}. The compiled side's probes read "
            f"lower than the eager side's in {lower} of the {len(rounds)} rounds; the cause is not established, so "
            "the compiled side's MFU against its own probes may read high.\n")


CPU_LIMITS = """
**Where the time goes, against the 70% MFU target.** In a profile of an eager step on the bundled
model (8 x 512 packed tokens), about a fifth of the time goes to memory-bound elementwise work
(SiLU and its gradient, RMSNorm, rotary embeddings, residual adds, the softmax of the loss), each
operation a separate pass over activations too large for the caches; `train.compile` fuses it,
which is why the compiled side's MFU is the higher one in most rounds. In a profile of a compiled
step (4 layers) the matmuls take about 70% of the time. Timed alternately with the square matmul
(`python bench/_gemm_ceiling.py`), the step's large products run at 86-107% of its rate, the
head's included. The head's forward used to run at 70-75%: each chunk's 100 MB of logits went into
newly mapped memory, and the page faults of that memory cost as much as a quarter of the product.
Since the run of 2026-11-23 07:07 every chunk writes into one reused buffer, and the log-sum-exp is taken from
the in-place exponentials instead of a logsumexp call that allocated another 100 MB; timed alone
while making the change (1,946 positions, old and new alternating), the head with its loss and
gradient ran 1.33x faster. The ceiling above
is lower because it also counts the rank-16 adapter products, which are memory-bound, and takes the
square rate once. The per-example attention kernels
took 13.5-15% of the time for about 4% of the FLOPs. PyTorch's CPU flash kernel runs an example of
100-300 tokens at a fifth to a third of the matmul rate, and two intra-op threads ran it no faster
than one; since 2026-11-23 04:39 whole examples run side by side in one-thread workers, which
made paired steps 1.06x (eager) and 1.12x (compiled) faster (section below), and attention still
takes about 15% of a compiled step. The throughput rounds since then read within the spread of the
earlier ones: the host's drift from run to run is larger than this gain. Measured and not kept,
because they did not help: q/k/v and gate/up computed as one stacked matmul each (no gain beyond
the host's noise), LoRA's rank-16 products folded into the large matmuls as extra rows and columns
(no faster: the strided outputs cost what the saved passes gained), Inductor's max-autotune (no
change), the MLP run in token chunks to stay in cache (slower), padded SDPA per length bucket
(slower), a compiled math attention (no faster than the flash kernel), attention as blocked
matmuls per kv-head group (the group's query heads stacked, causal blocks of 64 queries): 12%
faster than the flash kernels on the attention alone when the probabilities are kept for the
backward (about 2% of a step, for about 1 GB more memory on the bundled model), slower when the
backward recomputes them; FlexAttention (compiled on CPU it is inference-only in torch 2.13), and glibc's malloc thresholds raised so that freed activations stay in
the process. On that last one, one-off timings (not a bench command) say more than the first try
did: a full-size compiled step faults 100-400 thousand pages, almost all in the forward, and a
fused kernel writing into fresh pages runs 2-3x slower than into reused ones (the SiLU backward,
10 ms alone, about 30 ms inside a step). With glibc's mmap threshold at its 32 MiB ceiling and
the heap never trimmed, faults fell to 25-29 thousand per step and six alternating process pairs
ran a median 1.05x faster (0.96-1.27x, within this host's noise). It is not kept: the remaining
faults come from glibc itself. PyTorch asks for its buffers through posix_memalign (64-byte
alignment), and glibc often cannot place an aligned request in a freed block of the same size, so
the heap grows into fresh pages instead: in C, ten rounds of allocating and freeing 24 MiB
faulted 0 pages through malloc and 43,008 through posix_memalign (7 of the 10 rounds). An allocator
that reuses aligned blocks (jemalloc, tcmalloc) is the way to take this cost out.
"""


def _rounds_clause(r: dict[str, Any]) -> str:
    n = len(r.get("rounds", []))
    return f", in {n} rounds" if n > 1 else ""


def _rounds(r: dict[str, Any]) -> str:
    """Each round's ratios: the spread says how far one round's figure can be trusted on this host."""
    rounds = [x for x in r.get("rounds", []) if "ratio" in x]
    if len(rounds) < 2:
        return ""
    listed = lambda key: ", ".join(f"{x[key]}x" for x in rounds)
    mfu = lambda side: ", ".join(f"{x[side]['mfu']:.0%}" for x in rounds)
    return (f"\nThe ratios are medians of {len(rounds)} rounds (each side once per round, the order rotating): "
            f"eager {listed('ratio')} (MFU {mfu('tunewise')}); compiled {listed('ratio_compiled')} "
            f"(MFU {mfu('tunewise_compiled')}). Each side's row above is its median round by tokens/s.\n")


def throughput(r: dict[str, Any]) -> str:
    t, b = r["tunewise"], r.get("baseline")
    size = r["size"]
    rows = [("tunewise", t)] + ([("tunewise, `train.compile: true`", r["tunewise_compiled"])] if "tunewise_compiled" in r else []) \
        + ([("baseline (TRL)", b)] if b else [])
    table = ["| side | real tokens/s | padding | model GFLOP/s | MFU | matmul rate in the run, GFLOP/s (probes) | "
             "MFLOP/token | peak RSS | load avg |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, s in rows:
        table.append(f"| {name} | **{s['tokens_per_s']}** | {s['padding_fraction']:.0%} | {s['model_gflops_per_s']} | "
                     f"**{s['mfu']:.0%}** | {s['matmul_peak_gflops_per_s']:.0f} ({_probe_range(s)}) | "
                     f"{s['mflops_per_token']} | {s['peak_rss_mib'] / 1024:.1f} GiB | "
                     f"{s['load_average'][0]}-{s['load_average'][1]} |")
    compiled = f"; with `train.compile: true`, **{r['ratio_compiled']}x** (the compile itself, in step 1, is not timed)" if "ratio_compiled" in r else ""
    ratio = f"\n**tunewise / baseline: {r['ratio']}x** real tokens/s (CPU-time ratio {r['ratio_cpu_time']}x){compiled}.\n" if b else ""
    ratio += _rounds(r) + _drift_note(rows) + _history()
    c = r.get("gemm_ceiling")
    ceiling = (f"\n**Matmul ceiling of this step** (`bench/_gemm_ceiling.py`: the step's own GEMMs, {c['tokens']} tokens and "
               f"{c['head_positions']} head positions, each timed alone, median of 5): {c['gflops_per_s']} GFLOP/s, "
               f"{c['fraction_of_peak']:.0%} of the sustained square-matmul rate measured beside it "
               f"({c.get('square_matmul_gflops_per_s', 'n/a')} GFLOP/s); eager tunewise reaches "
               f"{c['tunewise_fraction_of_ceiling']:.0%} of it. The rest of a step goes to attention (PyTorch's CPU "
               "flash kernel runs at 25-75 GFLOP/s on these lengths), the skinny rank-16 adapter matmuls and the "
               "memory-bound work around the matmuls (RMSNorm, rotary embeddings, SiLU, residual adds, copies), "
               "which is what `train.compile` fuses.\n" + CPU_LIMITS) if c else ""
    arounds = [f"{s['mfu_vs_around']:.0%}" for _, s in rows if "mfu_vs_around" in s]
    around = (" Against the before/after probes this time, MFU would read " + ", ".join(arounds)
              + " (same order as the table).") if arounds else ""
    peaks = [s for _, s in rows if "matmul_best_call_gflops_per_s" in s]
    best_call = (" Against the fastest single call instead (not a rate a run can hold), MFU would read "
                 + ", ".join(f"{s['mfu_vs_best_call']:.0%}" for s in peaks) + " (same order as the table).") if peaks else ""
    return f"""## Training throughput: LoRA SFT on the bundled model

{_meta(r)}

Skewed chat data ({size['rows']} generated conversations, log-normal lengths: median ~140 tokens, a
tail to {size['max_length']}); LoRA r=16 on all linear layers, alpha 32, dropout {r.get('lora_dropout', 0)}, lr 2e-4
cosine, batch {size['batch']}, max length {size['max_length']}, fp32. {size['steps']} optimizer steps per side;
the clock runs from the end of step 1 to the end of the last (model load, tokenization and the
warm-up step excluded), in a process per side, one after the other{_rounds_clause(r)}.

{chr(10).join(table)}
{ratio}{ceiling}
- **baseline**: `bench/_baseline_trl.py`, the script a user writes: TRL `SFTTrainer` + peft
  `LoraConfig`, no packing, padded batches, `bf16=False`, TRL's defaults otherwise, which include
  `gradient_checkpointing=True` (baseline here: {r.get('baseline_gradient_checkpointing')}) and the
  loss on every token.
- **tunewise**: `run_training_job` with a spec (`bench/_tunewise_sft.py`): packing, loss on the
  answers only, the output head only at labelled positions, attention per packed example, head and
  cross-entropy in chunks, LoRA through a merged fp32 weight (dropout 0: `train/fused_lora.py`);
  MLflow tracking on, evaluation after training off. Micro-batch
  decision of the memory planner: {r.get('tunewise_batch_plan', {}).get('micro_batch_size')} x
  {r.get('tunewise_batch_plan', {}).get('gradient_accumulation')}.
- **MFU** = model FLOP/s / the fp32 FLOP/s the machine's matmul gave during the same run: a 2048^3
  `torch.mm` repeated for 2 s after every optimizer step, in the training process (the probes'
  seconds are taken off the throughput clock), all the probes' FLOPs over all their seconds. This
  VM's two cores share physical cores with neighbours, and the square-matmul rate flips between
  about 155 and 250 GFLOP/s within seconds (each probe's rate is in the table's range and in the
  JSON). A probe just before and after training, as earlier rounds used, samples two moments of a
  minutes-long run: against it, the same code read 43% to 68% MFU. In the first six rounds with
  probes between steps, the compiled side's probes read lower than the eager side's in five rounds
  and the same in one; the cause is not established, so the compiled side's MFU may read
  high.{around}{best_call} Model FLOPs (`bench/_flops.py`) count useful work only: per real token
  2N forward + 2N input-gradient for the frozen base (layer 0's q/k/v input-gradient skipped, as
  autograd skips it), LoRA forward + both gradients (6 x r x (in + out) per token on both sides, also
  where tunewise computes the forward inside a merged weight), attention 12 x heads x head_dim per causal
  pair inside each example, and the output head (4 x vocab x hidden) only where it runs: labelled
  positions in tunewise, every real position in the baseline. Padding, masked pairs and the
  baseline's recomputation count for nothing.
"""


def memory(r: dict[str, Any]) -> str:
    table = ["| mode | micro-batch x length | peak RSS | peak growth | training growth | planner estimate | estimate / training growth | tokens/s | load avg |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for m in r["modes"]:
        est = f"{m['planner_peak_mib'] / 1024:.2f} GiB" if m.get("planner_peak_mib") else "n/a"
        ratio = f"{m['planner_vs_measured']}" if m.get("planner_vs_measured") else "n/a"
        table.append(f"| {m['mode']} | {m['micro_batch']} x {m['max_length']} | {m['peak_rss_mib'] / 1024:.2f} GiB | "
                     f"{m['peak_growth_mib'] / 1024:.2f} GiB | **{m['training_growth_mib'] / 1024:.2f} GiB** | {est} | "
                     f"{ratio} | {m['tokens_per_s']} | {m['load_average']} |")
    return f"""## Peak memory per mode

{_meta(r)}

Each mode trains {r['size']['steps']} steps through `run_training_job` in its own process, on the same
data (packed to {r['size']['max_length']} tokens) at the same micro-batch (the planner is told memory is
unbounded, so it does not shrink it). On CPU, *peak RSS* is the process's VmHWM (what `top` shows);
*peak growth* is that minus the RSS before the model was loaded (Python, torch and tunewise
imported); *training growth* is the highest RSS once step 1 has finished, minus the same baseline:
weights, gradients, optimizer state, activations and allocator slack, without the model-load spike.
The planner is {r['planner']} for the same setup; *estimate / training growth* compares the two
(on CUDA, with torch's peak allocation instead).

The planner models tensors. On CPU the process also keeps heap pages glibc does not hand back
after a free, which is why training growth runs above the estimate for the adapter modes here;
`tunewise plan --measure` runs its steps with `MALLOC_MMAP_THRESHOLD_=65536` (freed buffers go back
to the OS) and measures within 1% of the estimate in every mode (docs/planning.md). The fit check
that `train` runs keeps headroom for this on CPU: 30% over the estimate, 60% for a 4-bit base, whose
bitsandbytes layers dequantize a weight for every matmul and whose load quantizes a full-precision
copy (`overhead` in `plan/hardware.yaml`). LoRA and QLoRA here run with dropout 0, tunewise's default.

{chr(10).join(table)}
"""


def data_pipeline(r: dict[str, Any]) -> str:
    table = ["| variant | rows/s | seconds | kept | exact dups | near dups | errors | RSS growth | growth / file size | load avg |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, v in r["variants"].items():
        table.append(f"| {name.replace('_', ' + ')} | **{v['rows_per_s']:,}** | {v['seconds']} | {v['rows_kept']:,} | "
                     f"{v['exact_duplicates']:,} | {v['near_duplicates']:,} | {v['errors']:,} | "
                     f"{v['rss_growth_mib']:.0f} MiB | **{v['rss_growth_per_file_mib']}x** | {v['load_average']} |")
    p = r["planted"]
    return f"""## Data pipeline: validation and deduplication

{_meta(r)}

`tunewise.data.validate_file` on {r['rows']:,} generated chat rows ({r['file_mib']} MiB JSONL; planted:
{p['exact']:,} exact copies, {p['near']:,} near copies, {p['invalid']:,} invalid rows), each variant in a
fresh process. *RSS growth* is the call's peak RSS over the RSS before it; the file is read as a
stream and only normalized records are kept, so growth / file size well under 2 means the file is
never held twice.

{chr(10).join(table)}
"""


def reliability(r: dict[str, Any]) -> str:
    k, c = r["kill_resume"], r["bad_inputs"]
    kills = ", ".join(f"{p['step_reached']}" + (" (start-up)" if p["after_step"] == 0 else "") for p in k["kills"])
    bugs = "\n".join(f"  - `{f['id']}`: {f['known_bug'] or 'UNEXPECTED: ' + '; '.join(f['problems'])}" for f in c["failing"])
    verdict = "all passed" if k["ok"] else "FAILED: " + "; ".join(k["problems"])
    return f"""## Reliability

{_meta(r)}

**Kill and resume** ({r['size']['model']} model, LoRA, {k['total_steps']} steps, a checkpoint every
{r['size']['every']}): SIGKILL at {len(k['kills'])} random points (last step logged at each kill: {kills}),
the same command re-run after each. Checkpoints found corrupt after a kill: **{k['corrupt_checkpoints']}**.
Re-runs needed to finish after the last kill: {k['reruns_to_finish']}. Final step/train loss/val loss:
{k['final'].get('step')} / {k['final'].get('train_loss')} / {k['final'].get('val_loss')}; uninterrupted run:
{k['reference'].get('step')} / {k['reference'].get('train_loss')} / {k['reference'].get('val_loss')} (tolerance 1e-3).
Checks: {verdict}. {k['seconds']} s at load {k['load_average']}.

**Bad inputs** (`tests/fixtures/bad_inputs/cases.yaml`: datasets, job specs, overrides, CLI arguments,
names and paths that try to leave the workspace): **{c['clear_errors']} of {c['cases']}** end with a clear
error (exit 1 or 2, the file:line or field named, no traceback, inputs unchanged, nothing written
outside the workspace, nothing lost); {c['seconds']} s at load {c['load_average']}. The others are bugs:

{bugs}
"""


def _pairs_line(r: dict[str, Any], new: str, old: str, new_label: str, old_label: str) -> str:
    listed = ", ".join(f"{x}x" for x in r["ratios"])
    return (f"**{new_label[0].upper() + new_label[1:]} / {old_label}: {r['median_ratio']}x** real tokens/s, the "
            f"median of {len(r['ratios'])} pairs, faster in {r[f'pairs_{new}_faster']} (per pair: {listed}). Median "
            f"tokens/s: {old_label} {statistics.median(r[f'{old}_tokens_per_s']):.0f}, {new_label} "
            f"{statistics.median(r[f'{new}_tokens_per_s']):.0f}. Load average {r['load_average'][0]}-{r['load_average'][1]}.")


def compile_ab(r: dict[str, Any]) -> str:
    size = r["size"]
    return f"""## Eager against compiled decoder layers (`train.compile`)

{_meta(r)}

Two copies of the bundled model with the same LoRA adapters (r=16, all linear layers) train in one
process, one eager and one with its decoder layers compiled; each pair of optimizer steps runs the
same packed micro-batch ({size['batch']} x {size['max_length']}) on both, the order alternating, so both
steps of a pair meet the shared host in the same state ({WARM_UP_PAIRS_TEXT}).

{_pairs_line(r, "compiled", "eager", "compiled", "eager")}

This is why `train.compile: auto`, the default, compiles CPU runs with packed data once their second
step shows more than 10 minutes of training left.
"""


def attention_ab(r: dict[str, Any]) -> str:
    size = r["size"]
    text = f"""## Per-example attention in one-thread workers

{_meta(r)}

One copy of the bundled model trains LoRA (r=16, all linear layers) on packed micro-batches
({size['batch']} x {size['max_length']}); before each step, attention per packed example is switched
between whole examples run side by side in one-thread kernel workers (`train/kernel_threads.py`,
the default) and one example after another, each small kernel on torch's two intra-op threads. Each
pair runs the same batch both ways, the order alternating ({WARM_UP_PAIRS_TEXT}).

Eager layers: {_pairs_line(r, "workers", "one_by_one", "workers", "one by one")}
"""
    compiled = RESULTS / "attention_ab_compiled.json"
    if compiled.exists():
        c = json.loads(compiled.read_text())
        text += (f"\nCompiled layers (`{c['command']}`): "
                 f"{_pairs_line(c, 'workers', 'one_by_one', 'workers', 'one by one')}\n")
    return text


def allocator_ab(r: dict[str, Any]) -> str:
    size = r["size"]

    def median(side: str, key: str) -> float:
        return statistics.median(run[key] for run in r[side])

    per_pair = ", ".join(f"{x}x" for x in r["ratios"])
    rows = "\n".join(
        f"| {side} | {median(side, 'tokens_per_s'):.0f} | {median(side, 'mfu'):.0%} | "
        f"{median(side, 'matmul_peak_gflops_per_s'):.0f} | {median(side, 'peak_rss_mib') / 1024:.2f} GiB |"
        for side in ("glibc", "mimalloc"))
    return f"""## CPU training's allocator: glibc malloc against mimalloc

{_meta(r)}

An allocator is chosen when a process starts, so each pair here is two whole training processes,
the order alternating: the throughput benchmark's tunewise side (LoRA r=16 on the bundled model,
compiled decoder layers, packed {size['batch']} x {size['max_length']} micro-batches, {size['steps']}
optimizer steps, the first not timed), once under glibc's malloc and once with mimalloc preloaded
as `tunewise train` preloads it on CPU (`src/tunewise/train/allocator.py`).

**mimalloc / glibc: {r['median_ratio']}x** real tokens/s, the median of {len(r['ratios'])} pairs,
faster in {r['pairs_mimalloc_faster']} (per pair: {per_pair}). Load average {r['load_average'][0]}-{r['load_average'][1]}.

| allocator | real tokens/s | MFU | matmul rate in the run, GFLOP/s | peak RSS |
| --- | ---: | ---: | ---: | ---: |
{rows}

Medians over the pairs. Why it matters: PyTorch asks for 64-byte-aligned blocks, glibc often grows
the heap into fresh pages for them instead of reusing a freed block of the same size, and every
fresh page costs a fault and a zero-fill (a compiled step of this model faulted 100-400 thousand
pages under glibc, 9 under mimalloc with purging off, in one-off counts). mimalloc keeps the peak
heap mapped until the process exits, so its peak RSS can read higher.
"""


def _waits(w: dict[str, Any]) -> str:
    return f"{w['mean_h']} / {w['p95_h']} / {w['max_h']}"


def _policy_rows(rows: list[dict[str, Any]]) -> str:
    out = ["| policy | jobs per hour | vs whole-GPU FIFO | makespan | GPU compute in use | wait mean / p95 / max (h) "
           "| partial gang starts | preemptions |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        pre = ", ".join(f"{n} {k}" for k, n in sorted(r["preemptions"].items())) or "none"
        out.append(f"| {r['policy']} | **{r['jobs_per_hour']}** | {r['speedup_vs_whole_gpu_fifo']}x | {r['makespan_h']} h | "
                   f"{r['gpu_utilization']:.0%} | {_waits(r['wait_all'])} | {r['partial_gang_starts']} | {pre} |")
    return "\n".join(out)


def scheduler_sim(r: dict[str, Any]) -> str:
    t = r["trace"]
    main = [p for p in r["policies"] if p["policy"] in ("tunewise", "whole-GPU FIFO", "priority FIFO")]
    ours = next(p for p in r["policies"] if p["policy"] == "tunewise")
    teams = sorted(ours["wait_by_team"])
    team_rows = ["| team | " + " | ".join(p["policy"] for p in main) + " |", "| --- |" + " ---: |" * len(main)]
    team_rows += [f"| {team} | " + " | ".join(_waits(p["wait_by_team"][team]) for p in main) + " |" for team in teams]
    class_rows = ["| priority class | " + " | ".join(p["policy"] for p in main) + " |", "| --- |" + " ---: |" * len(main)]
    class_rows += [f"| {c} | " + " | ".join(_waits(p["wait_by_class"][c]) for p in main) + " |" for c in ours["wait_by_class"]]
    half = r["half_busy"]
    target = "met" if ours["speedup_vs_whole_gpu_fifo"] >= 1.5 else "not met"
    plot = f"\n![Jobs waiting and GPU compute in use over time](bench/results/{r['plot']})\n" if r.get("plot") else ""
    return f"""## Scheduler simulation: tunewise against whole-GPU FIFO and priority FIFO

{_meta(r)}

The real scheduler (`tunewise.jobs.scheduler.schedule`) on a simulated clock, over {t['jobs']} jobs
(seed {t['seed']}) sized by the planner on an H100 80GB: {', '.join(t['kinds'])}. {t['gang_jobs']} are
multi-GPU gangs, {t['shareable_jobs']} are small enough to share a card. Four teams with nominal
quotas, three priority classes; arrivals over {t['arrival_span_h']} h offer {t['offered_load']}x what the
cluster can run ({t['work_gpu_hours']} GPU-hours of work: no schedule can finish in under
{t['makespan_bound_h']} h). Real run times are the planner's estimate times a log-normal error (sigma
{t['runtime_error_sigma']}); a preempted job takes {t['stop_s']:.0f} s to checkpoint and {t['restart_s']:.0f} s
to restart. Cluster: 4 nodes x 8 H100 80GB; for tunewise four cards of one node are partitioned
3g.40gb + 4g.40gb; the baselines get all 32 cards whole. Speeds are compute-bound: a shared card or
a MIG slice runs a job at its share of the compute, so sharing buys no free compute here. Every
admission is checked: no device over-committed, no gang started short of its workers.

{_policy_rows(r['policies'])}

**tunewise / whole-GPU FIFO: {ours['speedup_vs_whole_gpu_fifo']}x jobs per hour** (target 1.5x: {target}). The
rows below tunewise turn one feature off at a time on the same trace.

Waits per team, mean / p95 / max in hours:

{chr(10).join(team_rows)}

Waits per priority class (starvation shows as the low class's maximum):

{chr(10).join(class_rows)}

**If small jobs keep only {half['small_job_busy_share']:.0%} of a card busy** (small models leave a large
card partly idle, so jobs sharing it barely slow each other), on the same trace:

{_policy_rows(half['policies'])}
{plot}"""
def scaling(r: dict[str, Any]) -> str:
    size = r["size"]
    rows = ["| method | strategy | side | tokens/s (median) | each round: tokens/s at load avg |",
            "| --- | --- | --- | ---: | --- |"]
    lines = []
    for method, m in r["methods"].items():
        for side, v in m["sides"].items():
            rounds = ", ".join(f"{run['tokens_per_s']:,.0f} at {run['load_average']}" for run in v["runs"])
            rows.append(f"| {method} | {m['strategy'] if side.startswith('2') else 'one process'} | {side} | "
                        f"**{v['tokens_per_s']:,.0f}** | {rounds} |")
        lines.append(f"- {method}: efficiency **{m['efficiency']:.0%}** of a perfect doubling; two processes give "
                     f"{m['two_processes_vs_two_threads']:.2f}x the tokens/s of one process with both cores' threads.")
    loads = [run["load_average"] for m in r["methods"].values() for v in m["sides"].values() for run in v["runs"]]
    busy = f", as in these runs: {min(loads)}-{max(loads)}" if max(loads) > 2.5 else ""
    return f"""## Scaling: one process against two on this machine

{_meta(r)}

`tunewise train` with `resources.nproc_per_node` 1 or 2 on {size['model']} (fp32, micro-batch {size['micro_batch']}
x {size['max_length']} tokens, {size['steps']} steps, the same global batch of 2 micro-batches a step: one
process accumulates two, two processes take one each), {size['rounds']} round(s), the sides' order
alternating. Tokens/s is the median over steps 3..N from metrics.jsonl (start-up and the last step's
checkpoint are not in it), then over rounds.

{chr(10).join(rows)}

{chr(10).join(lines)}

Why the figures are what they are. This machine has 2 cores and shares them with other work (the
load average of each run is in the table). One process with 2 threads splits every kernel between
both cores and waits at its end for the slower half. These micro-batches ({size['micro_batch']} x
{size['max_length']} tokens) make small kernels, so that wait is a large share of each one, and a
larger one when other work holds a core (load above 2{busy}): the 2-thread process can fall below
one thread. Processes with one thread each never wait for each other inside a kernel, only at the
step's gradient reduction. The efficiency line compares two processes with one process on one
core: what is left of a doubling after the gradient all-reduce (DDP) or the all-gathers and
reduce-scatters (FSDP2) over gloo and after the two processes share the memory bandwidth. Data
parallelism pays off when each process has a device of its own: 1 vs N GPUs for LoRA and full
fine-tuning on the Llama 3.1 8B shape needs such a machine: not measured here.
"""


WARM_UP_PAIRS_TEXT = "the first two pairs, which include the compilation, are not counted"


def serving(r: dict[str, Any]) -> str:
    from _report_serving import serving as render_serving

    return render_serving(r, _meta(r))


def api_load(r: dict[str, Any]) -> str:
    from _report_control_plane import api_load as render_api_load

    return render_api_load(r)


def api_listing(r: dict[str, Any]) -> str:
    from _report_control_plane import api_listing as render_api_listing

    return render_api_listing(r)


SECTIONS = {"throughput": throughput, "compile_ab": compile_ab, "attention_ab": attention_ab,
            "allocator_ab": allocator_ab, "memory": memory, "data_pipeline": data_pipeline,
            "reliability": reliability, "scheduler_sim": scheduler_sim, "serving": serving,
            "api_load": api_load, "api_listing": api_listing, "scaling": scaling}


def render(results: Path = RESULTS) -> str:
    parts = [HEADER]
    for name, section in SECTIONS.items():
        path = results / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            data["_written"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
            parts.append(section(data))
        else:
            parts.append(f"## {name}\n\nNot run yet: `python bench/{name}.py --full`.\n")
    gpu_path = results / "gpu.json"
    if gpu_path.exists():
        data = json.loads(gpu_path.read_text())
        data["_written"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(gpu_path.stat().st_mtime))
        parts.append(gpu(data))
    else:
        parts.append(GPU_NOT_RUN)
    return "\n".join(parts)
