"""Scheduler simulation: tunewise's scheduler against whole-GPU FIFO and strict priority FIFO, one trace.

The real scheduler (`tunewise.jobs.scheduler.schedule`) runs on a simulated clock (bench/_sim_engine.py)
over a seeded trace of jobs sized by the planner (bench/_sim_trace.py) on 4 nodes x 8 H100 80GB.
Policies, on the same trace:
  - tunewise: the full policy (GPU sharing, MIG slices on 4 cards of one node, priority classes with
    aging, EASY backfill, team quotas with borrowing and reclaim, preemption);
  - whole-GPU FIFO: one job per whole card, one queue in submission order, no backfill (what a plain
    job queue does; a gang still starts all at once, otherwise it would deadlock);
  - priority FIFO: strict priority order, FIFO within a class, whole cards, no backfill, no aging;
  - and tunewise with one feature off at a time, to show where the gain comes from.
The baselines get every card whole (no MIG partitioning): the best cluster for them.

Speeds follow a compute-bound model (bench/_sim_engine.py): sharing a card or taking a MIG slice
slows a job in proportion, so sharing buys no free compute. A second run of the three main
policies assumes small (shareable) jobs keep only half a card busy, where sharing does pay.

    python bench/scheduler_sim.py [--full] [--jobs N] [--seed S] [--load L]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, emit, load_average, machine_info, parse_args  # noqa: E402
from _sim_engine import RESTART_SECONDS, STOP_SECONDS, Simulation, wait_stats  # noqa: E402
from _sim_trace import CLASSES, GPUS_PER_NODE, NODES, RUNTIME_ERROR_SIGMA, cluster, make_trace, quotas  # noqa: E402

from tunewise.jobs.schedule_types import SchedulerPolicy  # noqa: E402

FULL_JOBS, QUICK_JOBS = 1200, 150
# Estimated starts inform users and never change a decision; the simulation skips computing them.
TUNEWISE = SchedulerPolicy(priority_classes=tuple(CLASSES.values()), estimate_depth=0)
PLAIN = SchedulerPolicy(share_gpus=False, backfill=False, preemption=False, aging_seconds=None, estimate_depth=0)
POLICIES = {
    "tunewise": (True, True, TUNEWISE),
    "whole-GPU FIFO": (False, False, replace(PLAIN, priorities=False)),
    "priority FIFO": (False, False, PLAIN),
    "tunewise without MIG": (False, True, TUNEWISE),
    "tunewise without backfill": (True, True, replace(TUNEWISE, backfill=False)),
    "tunewise without GPU sharing": (True, True, replace(TUNEWISE, share_gpus=False)),
    "tunewise without quotas": (True, False, TUNEWISE),
}


def _extra(parser) -> None:
    parser.add_argument("--jobs", type=int, help=f"Jobs in the trace (default {FULL_JOBS} with --full, else {QUICK_JOBS}).")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--load", type=float, default=1.25, help="Offered work over what the cluster can run.")
    parser.add_argument("--no-plot", action="store_true")


MAIN = ("tunewise", "whole-GPU FIFO", "priority FIFO")
HALF_BUSY = 0.5


def run_policies(trace, names, small_job_busy_share: float) -> list[dict]:
    rows = []
    for name in names:
        mig, with_quotas, policy = POLICIES[name]
        started = time.perf_counter()
        result = Simulation(cluster(mig=mig), quotas() if with_quotas else (), policy, trace,
                            small_job_busy_share).run()
        row = summarize(name, trace, result, time.perf_counter() - started)
        rows.append(row)
        print(f"{name:30} {row['jobs_per_hour']:7.2f} jobs/h  makespan {row['makespan_h']:7.2f} h  "
              f"util {row['gpu_utilization']:.0%}  wait mean {row['wait_all']['mean_h']} h max {row['wait_all']['max_h']} h  "
              f"partial gangs {row['partial_gang_starts']}  preemptions {row['preemptions']}", file=sys.stderr)
    baseline = next(r for r in rows if r["policy"] == "whole-GPU FIFO")
    for row in rows:
        row["speedup_vs_whole_gpu_fifo"] = round(row["jobs_per_hour"] / baseline["jobs_per_hour"], 2)
    return rows


def summarize(name: str, trace, result, wall_s: float) -> dict:
    first = min(j.submitted_at for j in trace)
    makespan_h = (max(result.finished.values(), default=first) - first) / 3600
    cards = NODES * GPUS_PER_NODE
    waits = {j.id: result.first_start[j.id] - j.submitted_at for j in trace if j.id in result.first_start}
    teams = sorted({j.team for j in trace})
    by_class = {c: wait_stats([waits[j.id] for j in trace if j.priority == p and j.id in waits])
                for c, p in CLASSES.items()}
    return {
        "policy": name, "jobs": len(trace), "finished": len(result.finished), "stuck": result.stuck[:10],
        "makespan_h": round(makespan_h, 2), "jobs_per_hour": round(len(result.finished) / makespan_h, 2) if makespan_h else 0,
        "gpu_utilization": round(result.busy_compute_s / (cards * makespan_h * 3600), 3) if makespan_h else 0,
        "wait_all": wait_stats(list(waits.values())),
        "wait_by_team": {t: wait_stats([waits[j.id] for j in trace if j.team == t and j.id in waits]) for t in teams},
        "wait_by_class": by_class,
        "partial_gang_starts": result.partial_gang_starts, "overcommits": result.overcommits,
        "preemptions": dict(result.preemptions), "scheduler_calls": result.scheduler_calls,
        "scheduler_ms_per_call": round(1000 * wall_s / max(result.scheduler_calls, 1), 2),
        "timeline": [(round(t / 3600, 3), q, round(b, 2)) for t, q, b in result.timeline],
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for row in rows:
        hours = [t for t, _q, _b in row["timeline"]]
        top.plot(hours, [q for _t, q, _b in row["timeline"]], label=row["policy"], linewidth=1)
        bottom.plot(hours, [b / (NODES * GPUS_PER_NODE) for _t, _q, b in row["timeline"]], label=row["policy"],
                    linewidth=1)
    top.set_ylabel("jobs waiting")
    bottom.set_ylabel("GPU compute in use")
    bottom.set_xlabel("hours since the first job arrived")
    bottom.set_ylim(0, 1.05)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{rows[0]['jobs']} jobs on {NODES} x {GPUS_PER_NODE} H100 (bench/scheduler_sim.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    n_jobs = args.jobs or (FULL_JOBS if args.full else QUICK_JOBS)
    trace = make_trace(n_jobs, args.seed, args.load)
    load = load_average()
    rows = run_policies(trace, list(POLICIES), 1.0)
    print(f"-- shareable jobs keep {HALF_BUSY:.0%} of a card busy", file=sys.stderr)
    half_busy = run_policies(trace, list(MAIN), HALF_BUSY)
    plot_name = None
    if args.full and not args.no_plot:  # a quick run leaves bench/results alone
        plot_name = "scheduler_sim.png"
        plot([r for r in rows if r["policy"] in MAIN], RESULTS / plot_name)
    kinds = sorted({j.kind for j in trace})
    emit("scheduler_sim", {
        "command": "python bench/scheduler_sim.py" + (" --full" if args.full else "")
                   + (f" --jobs {args.jobs}" if args.jobs else "") + (f" --seed {args.seed}" if args.seed != 19 else "")
                   + (f" --load {args.load}" if args.load != 1.25 else ""),
        "machine": machine_info(), "load_average": load,
        "trace": {"jobs": n_jobs, "seed": args.seed, "offered_load": args.load, "kinds": kinds,
                  "gang_jobs": sum(1 for j in trace if j.demand.gpus > 1),
                  "shareable_jobs": sum(1 for j in trace if j.demand.shareable),
                  "arrival_span_h": round((trace[-1].submitted_at - trace[0].submitted_at) / 3600, 2),
                  "runtime_error_sigma": RUNTIME_ERROR_SIGMA, "stop_s": STOP_SECONDS, "restart_s": RESTART_SECONDS,
                  "work_gpu_hours": round(sum(j.demand.gpus * j.actual_seconds for j in trace) / 3600, 1),
                  "makespan_bound_h": round(sum(j.demand.gpus * j.actual_seconds for j in trace)
                                            / (NODES * GPUS_PER_NODE) / 3600, 2)},
        "plot": plot_name, "policies": [r if r["policy"] in MAIN else {k: v for k, v in r.items() if k != "timeline"}
                                        for r in rows],
        "half_busy": {"small_job_busy_share": HALF_BUSY,
                      "policies": [{k: v for k, v in r.items() if k != "timeline"} for r in half_busy]},
    }, write=args.full)


if __name__ == "__main__":
    main()
