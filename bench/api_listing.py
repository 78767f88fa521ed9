"""Listing fine-tuning jobs with 10,000 in the store, on SQLite and on PostgreSQL, with the query plans.

One client, alone, times `GET /v1/fine_tuning/jobs` against a server process (as `tunewise server`
runs) whose store holds 10,000 finished jobs of four teams: the first page of 20, pages of 20 behind
an `after` cursor halfway down and near the end of the team's list, and a first page of 100. Pages
are keyset pages (`seq < cursor ORDER BY seq DESC LIMIT n+1`), so a deep page should cost what the
first one costs; the store's own plan (EXPLAIN) of each statement is recorded and checked to walk an
index, never to scan the table or sort. PostgreSQL's statistics are gathered first (ANALYZE), as
autovacuum keeps them in a store in use.

    python bench/api_listing.py [--full]      # quick: 1,000 jobs
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load_average, machine_info, parse_args  # noqa: E402
from api_load import TEAMS, Server, _percentiles, on_both_stores, seed  # noqa: E402

FULL = {"jobs": 10_000, "events_per_job": 0, "repeats": 50}
QUICK = {"jobs": 1_000, "events_per_job": 0, "repeats": 10}


def cases(seeded: dict) -> dict[str, dict]:
    own = [job for team, job in seeded["jobs"] if team == TEAMS[0]]  # oldest first
    return {"first page of 20": {"limit": 20},
            "page of 20 after a job halfway down": {"limit": 20, "after": own[len(own) // 2]},
            "page of 20 after a job near the end": {"limit": 20, "after": own[30]},
            "first page of 100": {"limit": 100}}


def latencies(url: str, key: str, pages: dict[str, dict], repeats: int) -> dict[str, dict]:
    import httpx

    out = {}
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60) as http:
        http.get("/v1/fine_tuning/jobs", params={"limit": 1})  # the key's argon2 check, once
        for name, params in pages.items():
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                response = http.get("/v1/fine_tuning/jobs", params=params)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200 and len(response.json()["data"]) == params["limit"], response.text
            out[name] = _percentiles(times)
    return out


def plans(url: str, pages: dict[str, dict]) -> dict[str, dict]:
    from tests.store_plans import full_scans, listing_plans
    from tunewise.jobs.store.db import Database

    db = Database(url)
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        out = {}
        for name, params in pages.items():
            found = listing_plans(db, TEAMS[0], params.get("after"), params["limit"])
            out[name] = {"plans": found, "full_scans": sum(len(full_scans(p)) for p in found)}
        return out
    finally:
        db.close()


def run_store(name: str, url: str, size: dict, work: Path) -> dict:
    home = work / name
    home.mkdir(parents=True)
    seeded = seed(url, home, size)
    pages = cases(seeded)
    explained = plans(url, pages)
    server = Server(home, url)
    try:
        load = load_average()
        timed = latencies(server.url, seeded["keys"][0], pages, size["repeats"])
    finally:
        server.stop()
    return {"store": name, "load_average": load,
            "cases": {case: {**timed[case], **explained[case]} for case in pages}}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size = FULL if args.full else QUICK
    results = on_both_stores(run_store, size, "tunewise-api-listing-")
    full_scans = sum(c["full_scans"] for s in results for c in s.get("cases", {}).values())
    emit("api_listing", {"command": "python bench/api_listing.py" + (" --full" if args.full else ""),
                         "machine": machine_info(), "size": size, "stores": results, "full_scans": full_scans},
         write=args.full)
    if full_scans:
        sys.exit(f"{full_scans} plan line(s) scan the jobs table or sort: the listing lost its index")


if __name__ == "__main__":
    main()
