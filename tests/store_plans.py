"""Finished jobs written straight into a store, and the query plans of listing them: shared by the
store tests (the listing uses indexes) and the API benchmarks (bench/api_load.py, bench/api_listing.py)."""

from __future__ import annotations

import time
from typing import Any


def finished_job_rows(count: int, teams: tuple[str, ...], *, start_seed: int = 0) -> list[dict[str, Any]]:
    """`count` succeeded jobs spread over `teams` in turn, oldest first, as rows for an INSERT."""
    from tunewise.jobs import ids

    now = time.time() - count
    rows = []
    for i in range(start_seed, start_seed + count):
        job_id, team = ids.new_id(ids.JOB), teams[i % len(teams)]
        rows.append(dict(id=job_id, team=team, status="succeeded", model="smollm2-135m-instruct",
                         training_file=ids.new_id(ids.FILE), seed=i, spec={"name": job_id}, source="openai",
                         model_token=ids.random_token(8), created_at=now + i, finished_at=now + i + 60,
                         fine_tuned_model=f"ft:smollm2-135m-instruct:{team}::x{i}", result_files=[],
                         job_metadata={"batch": str(i % 7)}, priority_class="normal", priority=0,
                         pool="default", preemptible=True, borrowed=False, attempts=1, failures=0, metrics_read=0))
    return rows


def listing_plans(db: Any, team: str, after: str | None, limit: int = 20) -> list[str]:
    """The store's plan (EXPLAIN) of every statement `GET /v1/fine_tuning/jobs` runs for one page."""
    from sqlalchemy import event

    from tunewise.jobs.actions import list_jobs

    statements: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as session:
            list_jobs(session, team, after=after, limit=limit)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
    plans = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = conn.exec_driver_sql(prefix + statement, parameters).all()
                plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


def full_scans(plan: str) -> list[str]:
    """The lines of a plan that read a whole table or sort rows instead of walking an index."""
    bad = ("SCAN jobs", "USE TEMP B-TREE", "Seq Scan", "Sort")
    return [line for line in plan.splitlines()
            if any(word in line for word in bad) and "USING INDEX" not in line and "USING COVERING INDEX" not in line]
