"""The control plane under load: 200 concurrent clients on SQLite and on PostgreSQL, side by side.

Each client (its own HTTP connection, one of four teams' keys) loops over a mix of what pipelines
and the portal do: list jobs (35%), retrieve a job (25%), list a job's events (20%), upload a
small training file (validated by the data pipeline on the way in, 10%), list files (10%). The
store holds 10,000 jobs with 5 events each, written before the clock starts. Reported per store:
p50/p99 latency per operation and overall, requests per second, errors (any non-2xx or failed
request). The server runs in its own process, as `tunewise server` does. The latency of one
client listing jobs with 10,000 in the store, and the query plans, are `bench/api_listing.py`.

    python bench/api_load.py [--full]      # quick: 20 clients, 1,000 jobs
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load_average, machine_info, parse_args  # noqa: E402

FULL = {"clients": 200, "jobs": 10_000, "requests_per_client": 25, "events_per_job": 5}
QUICK = {"clients": 20, "jobs": 1_000, "requests_per_client": 10, "events_per_job": 5}
MIX = (("list_jobs", 35), ("retrieve_job", 25), ("list_events", 20), ("upload_file", 10), ("list_files", 10))
TEAMS = ("bench-a", "bench-b", "bench-c", "bench-d")
TRAIN_ROWS = b"".join(b'{"messages": [{"role": "user", "content": "question %d"}, '
                      b'{"role": "assistant", "content": "answer %d"}]}\n' % (i, i) for i in range(12))


def seed(url: str, home: Path, size: dict) -> dict[str, list[str]]:
    """Keys for the teams and `jobs` finished jobs with their events, written straight into the store."""
    from tests.store_plans import finished_job_rows
    from tunewise.jobs import ids, keys
    from tunewise.jobs.store.db import Database
    from tunewise.jobs.store.models import Job, JobEvent

    db = Database(url)
    out: dict[str, list[str]] = {"keys": [], "jobs": []}
    with db.session() as session:
        out["keys"] = [keys.create_key(session, team).key for team in TEAMS]
    jobs = finished_job_rows(size["jobs"], TEAMS)
    out["jobs"] = [(row["team"], row["id"]) for row in jobs]
    for start in range(0, len(jobs), 1000):
        batch_jobs = jobs[start : start + 1000]
        batch_events = [dict(id=ids.new_id(ids.EVENT), job_id=row["id"], created_at=row["created_at"] + k,
                             level="info", message=f"Step {k + 1}/5: training loss=1.0", type="message", data=None)
                        for row in batch_jobs for k in range(size["events_per_job"])]
        _flush(db, Job, JobEvent, batch_jobs, batch_events)
    db.close()
    return out


def _flush(db, Job, JobEvent, jobs: list, events: list) -> None:
    from sqlalchemy import insert

    with db.session() as session:
        if jobs:
            session.execute(insert(Job), jobs)
        if events:
            session.execute(insert(JobEvent), events)
    jobs.clear()
    events.clear()


class Server:
    def __init__(self, home: Path, url: str):
        from tests.control_plane_support import free_port

        self.port = free_port()
        env = {**os.environ, "TUNEWISE_HOME": str(home),
               "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_api_server.py"), "--workspace", str(home),
                                      "--database-url", url, "--port", str(self.port)], env=env, cwd=REPO)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the bench server did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def _client(n: int, url: str, seeded: dict, count: int, samples: list, errors: list) -> None:
    import httpx

    team_index = n % len(TEAMS)
    key = seeded["keys"][team_index]
    own = [job for team, job in seeded["jobs"] if team == TEAMS[team_index]]
    rng = random.Random(n)
    ops = [name for name, weight in MIX for _ in range(weight)]
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=120) as http:
        for _ in range(count):
            op = rng.choice(ops)
            started = time.perf_counter()
            try:
                response = await _call(http, op, rng.choice(own))
                ok = response.status_code < 400
            except Exception as err:  # a refused or broken connection is an error too
                ok, response = False, err
            samples.append((op, time.perf_counter() - started))
            if not ok:
                errors.append(f"{op}: {getattr(response, 'status_code', response)}")


async def _call(http, op: str, job_id: str):
    if op == "list_jobs":
        return await http.get("/v1/fine_tuning/jobs", params={"limit": 20})
    if op == "retrieve_job":
        return await http.get(f"/v1/fine_tuning/jobs/{job_id}")
    if op == "list_events":
        return await http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 20})
    if op == "upload_file":
        return await http.post("/v1/files", files={"file": ("train.jsonl", TRAIN_ROWS)}, data={"purpose": "fine-tune"})
    return await http.get("/v1/files", params={"limit": 20})


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.5) * 1000, 1), "p99_ms": round(pick(0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 1)}


def run_store(name: str, url: str, size: dict, work: Path) -> dict:
    home = work / name
    home.mkdir(parents=True)
    t0 = time.monotonic()
    seeded = seed(url, home, size)
    seed_s = time.monotonic() - t0
    server = Server(home, url)
    try:
        samples: list[tuple[str, float]] = []
        errors: list[str] = []
        load = load_average()
        started = time.monotonic()

        async def everyone() -> None:
            await asyncio.gather(*(_client(n, server.url, seeded, size["requests_per_client"], samples, errors)
                                   for n in range(size["clients"])))

        asyncio.run(everyone())
        wall = time.monotonic() - started
    finally:
        server.stop()
    per_op = {op: _percentiles([s for o, s in samples if o == op]) for op, _ in MIX}
    return {"store": name, "seed_seconds": round(seed_s, 1), "requests": len(samples), "errors": len(errors),
            "error_examples": errors[:5], "wall_seconds": round(wall, 1),
            "requests_per_second": round(len(samples) / wall, 1), "overall": _percentiles([s for _, s in samples]),
            "per_operation": per_op, "load_average": load}


def on_both_stores(run: Callable[[str, str, dict, Path], dict], size: dict, prefix: str) -> list[dict]:
    """`run(store name, database URL, size, scratch folder)` on SQLite, then on a throwaway PostgreSQL
    (skipped with the reason where its binaries are missing)."""
    from tests.postgres_cluster import ThrowawayPostgres, available

    results = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        results.append(run("sqlite", f"sqlite:///{work / 'sqlite.db'}", size, work))
        reason = available()
        if reason:
            results.append({"store": "postgresql", "skipped": reason})
        else:
            with ThrowawayPostgres() as cluster:
                results.append(run("postgresql", cluster.create_database("bench"), size, work))
    return results


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size = FULL if args.full else QUICK
    results = on_both_stores(run_store, size, "tunewise-api-load-")
    emit("api_load", {"command": "python bench/api_load.py" + (" --full" if args.full else ""),
                      "machine": machine_info(), "size": size, "mix": dict(MIX), "stores": results},
         write=args.full)


if __name__ == "__main__":
    main()
