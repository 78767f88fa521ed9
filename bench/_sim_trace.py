"""The simulation's job trace and cluster: jobs sized by the planner, arrivals drawn from a seed.

Each job kind (QLoRA/LoRA on 7-70B, full fine-tunes, DPO, PPO) is planned once on an H100 80GB
with `tunewise.plan.plan` (micro-batch 4, sequence 2048, the planner's defaults otherwise); its
Demand comes from `tunewise.jobs.demand.demand_from_mode`, the same function the server uses. The
planner's hours scale with a job's token count, drawn log-uniformly; its epochs are 1-3. A
dataset is drawn again when the run would be estimated past MAX_ESTIMATE_HOURS (a longer
fine-tune is usually split into stages; one multi-day run would set every policy's makespan). The
job's real running time is the estimate times a log-normal error (sigma 0.25): the scheduler plans
on estimates and meets reality. Teams, priority classes and arrival times are drawn from the same
seed; a job goes to a team whose nominal quota holds it with room to spare (the team training
70B models on 16 GPUs has a quota of 20). Arrivals are a Poisson stream whose offered work is `load` times the cluster.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from tunewise.jobs.demand import demand_from_mode
from tunewise.jobs.pool_config import SchedulingConfig
from tunewise.jobs.schedule_types import Demand, Pool, Quota
from tunewise.plan.hardware import load_catalog
from tunewise.plan.planner import plan

GPU = "h100-80gb"
NODES, GPUS_PER_NODE = 4, 8
REFERENCE_TOKENS = 10_000_000  # each kind is planned at this size; hours scale linearly with tokens
TOKENS_RANGE = (1_000_000, 20_000_000)
MAX_ESTIMATE_HOURS = 12.0
RUNTIME_ERROR_SIGMA = 0.25

# (kind, parameters, planner mode, weight): mostly adapter jobs, as on a platform running frequent
# LoRA/QLoRA pipelines, with some full fine-tunes, DPO, PPO and a few multi-node gangs.
KINDS = (
    ("QLoRA 7B", 7e9, "qlora", 18), ("LoRA 7B", 7e9, "lora", 16), ("QLoRA 13B", 13e9, "qlora", 10),
    ("LoRA 13B", 13e9, "lora", 8), ("DPO 7B", 7e9, "dpo", 8), ("full 7B", 7e9, "full", 6),
    ("QLoRA 34B", 34e9, "qlora", 5), ("LoRA 34B", 34e9, "lora", 4), ("DPO 13B", 13e9, "dpo", 4),
    ("PPO 7B", 7e9, "ppo", 4), ("QLoRA 70B", 70e9, "qlora", 3), ("LoRA 70B", 70e9, "lora", 3),
    ("full 13B", 13e9, "full", 3), ("PPO 13B", 13e9, "ppo", 2), ("full 34B", 34e9, "full", 1.5),
    ("full 70B", 70e9, "full", 1),
)
TEAMS = (("research", 0.35, 20), ("product", 0.30, 6), ("platform", 0.20, 3), ("exploration", 0.15, 3))
CLASSES = {"low": 0, "normal": 100, "high": 1000}
CLASS_WEIGHTS = {"research": (0.3, 0.6, 0.1), "product": (0.1, 0.6, 0.3), "platform": (0.2, 0.7, 0.1),
                 "exploration": (0.6, 0.4, 0.0)}


@dataclass(frozen=True)
class TraceJob:
    id: str
    kind: str
    team: str
    priority: int
    submitted_at: float
    demand: Demand  # estimated_seconds: the planner's estimate for this job
    actual_seconds: float  # at full speed on whole devices


def cluster(*, mig: bool) -> tuple[Pool, ...]:
    """4 nodes x 8 H100 80GB; with `mig`, four cards of the last node are partitioned 3g.40gb + 4g.40gb."""
    groups = [{"type": GPU, "count": GPUS_PER_NODE}]
    nodes = [{"name": "node", "count": NODES - 1, "gpus": groups}]
    last = [{"type": GPU, "count": 4}, {"type": GPU, "count": 4, "mig": ["3g.40gb", "4g.40gb"]}] if mig else groups
    nodes.append({"name": f"node-{NODES}", "gpus": last})
    return SchedulingConfig.model_validate({"pools": [{"name": "gpu", "nodes": nodes}]}).build().pools


def quotas() -> tuple[Quota, ...]:
    return tuple(Quota(team, gpus=float(nominal)) for team, _share, nominal in TEAMS)


def kind_demands() -> dict[str, Demand]:
    """Each kind's Demand at REFERENCE_TOKENS for one epoch, from the planner."""
    device = load_catalog().device(GPU)
    out = {}
    for kind, params, mode, _weight in KINDS:
        report = plan(params=params, gpu=GPU, gpus=1, tokens=REFERENCE_TOKENS, seq_len=2048, micro_batch=4)
        out[kind] = demand_from_mode(report.mode(mode), device, gpus_per_node=GPUS_PER_NODE)
    return out


def make_trace(n_jobs: int, seed: int, load: float) -> list[TraceJob]:
    """`n_jobs` jobs arriving at `load` times what the cluster can run (offered GPU-hours per hour)."""
    rng = random.Random(seed)
    demands = kind_demands()
    kinds = [k[0] for k in KINDS]
    weights = [k[3] for k in KINDS]
    drafts = []
    for i in range(n_jobs):
        kind = rng.choices(kinds, weights)[0]
        base = demands[kind]
        estimate = float("inf")
        while estimate > MAX_ESTIMATE_HOURS * 3600:
            tokens = math.exp(rng.uniform(math.log(TOKENS_RANGE[0]), math.log(TOKENS_RANGE[1])))
            epochs = rng.choice((1, 1, 2, 3))
            estimate = base.estimated_seconds * tokens / REFERENCE_TOKENS * epochs
        actual = estimate * math.exp(rng.gauss(0.0, RUNTIME_ERROR_SIGMA))
        teams = [t for t in TEAMS if t[2] > base.gpus]
        team = rng.choices([t[0] for t in teams], [t[1] for t in teams])[0]
        klass = rng.choices(list(CLASSES), CLASS_WEIGHTS[team])[0]
        drafts.append((f"job-{i:04d}", kind, team, CLASSES[klass], replace(base, estimated_seconds=estimate), actual))
    work_gpu_s = sum(d[4].gpus * d[5] for d in drafts)
    rate = load * NODES * GPUS_PER_NODE / (work_gpu_s / n_jobs)  # jobs per second
    t = 0.0
    jobs = []
    for job_id, kind, team, priority, demand, actual in drafts:
        jobs.append(TraceJob(job_id, kind, team, priority, round(t, 3), demand, actual))
        t += rng.expovariate(rate)
    return jobs
