"""Which mode to use, and why: objective first, then hardware, then variants, budget and data size.

The rules follow the reference articles' practice (docs/planning.md names each source):
  - instruction, format or persona work is low-rank: the LoRA family;
  - new factual knowledge from a large domain corpus, or a tokenizer change: full fine-tuning;
  - alignment: DPO, PPO only when a learned reward signal is needed;
  - a mode that does not fit is never recommended; QLoRA when only it fits;
  - more than 3 variants of one base: adapters (one base + N adapters instead of N copies);
  - under ~1,000 examples a full fine-tune overfits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunewise.plan.hardware import GIB

if TYPE_CHECKING:
    from tunewise.plan.costs import ArtifactSizes
    from tunewise.plan.dataset import DatasetSize
    from tunewise.plan.mode_result import ModeResult
    from tunewise.plan.request import PlanRequest

SMALL_DATASET_EXAMPLES = 1_000
FULL_TASK_EXAMPLES = 10_000_000  # "more than 10M ... consider full" (Full Fine-Tuning vs PEFT)
PEFT_MATCHES_BELOW = 1_000_000  # "below 1M examples, PEFT methods typically match" (same article)
MANY_VARIANTS = 3

# Where to go when the preferred mode does not fit or costs too much, in order.
FALLBACKS = {
    "full": ["lora", "qlora"],
    "lora": ["qlora"],
    "dora": ["lora", "qlora"],
    "qlora": [],
    "dpo": [],
    "ppo": ["dpo"],
}


@dataclass
class Recommendation:
    mode: str | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "reasons": self.reasons, "warnings": self.warnings, "alternatives": self.alternatives}


def _preferred(req: PlanRequest, dataset: DatasetSize | None) -> tuple[str, list[str]]:
    """The mode the objective calls for, before hardware has a say."""
    if req.tokenizer_change:
        return "full", ["tokenizer change: new tokens need trained embedding and output rows, which LoRA "
                        "does not adapt; full fine-tuning trains them"]
    if req.objective == "alignment":
        if req.reward_signal:
            return "ppo", ["alignment with a learned reward signal: PPO optimises the policy against the reward model"]
        return "dpo", ["alignment from preference pairs: DPO needs no reward model and is simpler and cheaper "
                       "than PPO, matching it on dialogue and summarisation (Rafailov et al., 2023)"]
    if req.objective == "domain_knowledge":
        return "full", ["new factual knowledge from a domain corpus spreads across many layers; LoRA's low-rank "
                        "update absorbs less of it, so full fine-tuning (continued pre-training) is preferred"]
    if req.objective == "task_specific" and dataset is not None and dataset.examples >= FULL_TASK_EXAMPLES:
        return "full", [f"task-specific with {dataset.examples:,} examples (over {FULL_TASK_EXAMPLES:,}): full "
                        "fine-tuning has the higher quality ceiling at this data scale"]
    what = "instruction following, format and persona" if req.objective == "instruction" else "a narrow task"
    return "lora", [f"{what} is a behaviour change, genuinely low-rank: LoRA matches or approaches full "
                    f"fine-tuning there at a fraction of the memory"
                    + (f" (and below {PEFT_MATCHES_BELOW:,} examples PEFT typically matches full)"
                       if req.objective == "task_specific" else "")]


def _variants_reason(req: PlanRequest, sizes: ArtifactSizes) -> str:
    n = req.variants
    full = n * sizes.full_model_gb
    peft = sizes.full_model_gb + n * sizes.adapter_gb
    return (f"{n} variants: {n} full copies take {full:,.1f} GB of storage and serving memory; one base and "
            f"{n} adapters take {sizes.full_model_gb:,.1f} + {n} x {sizes.adapter_gb:.2f} = {peft:,.1f} GB")


def _usable(result: ModeResult) -> bool:
    return result.fits and result.within_budget


def _why_not(result: ModeResult, req: PlanRequest) -> str:
    if not result.fits:
        peak = result.single_device_peak_bytes / GIB
        if result.gpus_needed is None:
            return f"{result.mode} does not fit at any GPU count at this micro-batch ({peak:.1f} GB on one device)"
        return (f"{result.mode} does not fit: it needs {result.gpus_needed} x {req.gpu} "
                f"({peak:.1f} GB on one device), {req.gpus} available")
    return f"{result.mode} costs ${result.cost_usd:,.0f}, over the ${req.budget_usd:,.0f} budget"


def recommend(results: list[ModeResult], req: PlanRequest, dataset: DatasetSize | None,
              sizes: ArtifactSizes) -> Recommendation:
    """The mode to train, with every reason; `dataset` None: the rules that need its size are skipped."""
    by_mode = {r.mode: r for r in results}
    preferred, reasons = _preferred(req, dataset)
    warnings: list[str] = []
    if req.variants > MANY_VARIANTS:
        if preferred == "full" and not req.tokenizer_change:
            preferred = "lora"
            reasons.append(_variants_reason(req, sizes) + ": adapters (PEFT)")
        elif preferred == "full":
            warnings.append(_variants_reason(req, sizes) + "; the tokenizer change still calls for full copies")
        elif preferred in ("lora", "dpo", "ppo"):
            reasons.append(_variants_reason(req, sizes))
    chosen = None
    for candidate in [preferred] + FALLBACKS[preferred]:
        result = by_mode[candidate]
        if _usable(result):
            chosen = candidate
            break
        reasons.append(_why_not(result, req))
    if chosen is None:
        smallest = min(results, key=lambda r: r.single_device_peak_bytes)
        reasons.append(
            f"nothing fits: the smallest mode, {smallest.mode}, needs {smallest.single_device_peak_bytes / GIB:.1f} GB "
            f"on one device; try a larger GPU, more GPUs, a shorter --seq-len or a smaller --micro-batch"
        )
        return Recommendation(None, reasons, warnings)
    result = by_mode[chosen]
    if chosen == "qlora" and preferred != "qlora":
        reasons.append("QLoRA fits: the 4-bit base takes about a quarter of the 16-bit weights' memory "
                       "(expect 80-90% of full fine-tuning quality, per Introl 2025)")
    reasons.append(_fits_reason(result, req))
    if dataset is None:
        if req.budget_usd is not None:
            warnings.append("the budget is not checked without a dataset size: give --data FILE, --tokens N "
                            "or --examples N")
        if req.objective == "task_specific":
            warnings.append(f"a task-specific fine-tune with over {FULL_TASK_EXAMPLES:,} examples would call for "
                            "full fine-tuning; the dataset size decides")
    elif preferred == "full" and dataset.examples < SMALL_DATASET_EXAMPLES:
        warnings.append(f"only {dataset.examples:,} examples: a full fine-tune of every weight overfits data this "
                        "small; LoRA is the safer choice below ~1,000 examples")
    if req.tokenizer_change and chosen != "full":
        warnings.append("a tokenizer change needs the embeddings and output head trained too "
                        "(peft modules_to_save), which this adapter mode does not include by default")
    alternatives = [f"dora fits too: weight-decomposed LoRA, often a little better than LoRA at the same rank, "
                    f"{result.tokens_per_s / max(by_mode['dora'].tokens_per_s, 1e-9):.1f}x the time"
                    ] if chosen == "lora" and _usable(by_mode["dora"]) else []
    return Recommendation(chosen, reasons, warnings, alternatives)


def _fits_reason(result: ModeResult, req: PlanRequest) -> str:
    where = f"{result.memory.peak_bytes / GIB:.1f} GB per device on {result.gpus_used} x {req.gpu}"
    if result.hours_per_epoch is None or result.cost_usd is None:
        return f"{result.mode} fits: {where}"
    return f"{result.mode} fits: {where}, about {result.hours_per_epoch * req.epochs:.1f} h and ${result.cost_usd:,.2f}"
