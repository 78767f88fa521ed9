"""BENCHMARKS.md section for bench/api_load.py (kept apart from _report.py, which is long already)."""

from __future__ import annotations

from typing import Any


def api_load(r: dict[str, Any]) -> str:
    from _report import _meta

    size = r["size"]
    mix = ", ".join(f"{op.replace('_', ' ')} {share}%" for op, share in r["mix"].items())
    rows = ["| store | requests | errors | requests/s | p50 | p99 | load |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ops = ["| store | operation | p50 | p99 |", "| --- | --- | ---: | ---: |"]
    measured, skipped = _measured(r["stores"])
    for s in measured:
        o = s["overall"]
        rows.append(f"| {s['store']} | {s['requests']:,} | **{s['errors']}** | {s['requests_per_second']} | "
                    f"{o['p50_ms']} ms | {o['p99_ms']} ms | {s['load_average']} |")
        for op, p in s["per_operation"].items():
            ops.append(f"| {s['store']} | {op.replace('_', ' ')} | {p['p50_ms']} ms | {p['p99_ms']} ms |")
    nl = "\n"
    first = measured[0] if measured else None
    rps = first["requests_per_second"] if first else 0
    wait = f"{size['clients'] / rps:.1f}" if rps else "?"
    return f"""## Control plane API under load

{_meta(r)}

{size['clients']} concurrent clients (one connection each, four teams' keys), {size['requests_per_client']} requests
each: {mix}. The store holds {size['jobs']:,} jobs with {size['events_per_job']} events each; the server runs in
its own process, as `tunewise server` does, on the same two cores as the clients. Uploads are validated by the
data pipeline before they are answered. With every client waiting on one answer, {size['clients']} requests are
always in flight, so the latency below is mostly time in line: at {rps} requests/s each waits about
{wait} s. The cost of a request itself, one client listing alone with every job in the store, is the
next section. p99 includes each key's first request, which checks the key's argon2 hash (tens of
milliseconds and 64 MiB by design; one check per key however many requests bring it at once).

{nl.join(rows)}

{nl.join(ops)}
{(nl + '; '.join(skipped) + nl) if skipped else ''}"""


def api_listing(r: dict[str, Any]) -> str:
    from _report import _meta

    rows = ["| store | page | p50 | p99 | plan (the store's EXPLAIN) |", "| --- | --- | ---: | ---: | --- |"]
    measured, skipped = _measured(r["stores"])
    for s in measured:
        for case, c in s["cases"].items():
            rows.append(f"| {s['store']} | {case} | **{c['p50_ms']} ms** | {c['p99_ms']} ms | "
                        f"{'; '.join(_index_walks(plan) for plan in c['plans'])} |")
    nl = "\n"
    return f"""## Listing jobs with {r['size']['jobs']:,} in the store

{_meta(r)}

One client alone against the server process, {r['size']['repeats']} requests per page, load average
{' / '.join(str(s['load_average']) for s in measured)} while timing. Pages are keyset pages
(`seq < cursor ORDER BY seq DESC LIMIT n+1`, the cursor's `seq` found through the id's unique index), so a
page deep in the list costs what the first costs. Plan lines that scan the table or sort: **{r['full_scans']}**.

{nl.join(rows)}
{(nl + '; '.join(skipped) + nl) if skipped else ''}"""


def _index_walks(plan: str) -> str:
    """The index each plan line walks, in a few words."""
    import re

    found = re.findall(r"USING (?:COVERING )?INDEX (\S+)|Index (?:Only )?Scan(?: Backward)? using (\S+)", plan)
    return ", ".join(a or b for a, b in found) or plan.splitlines()[0]


def _measured(stores: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the stores measured, a line for each one skipped)."""
    return ([s for s in stores if not s.get("skipped")],
            [f"{s['store']}: skipped ({s['skipped']})" for s in stores if s.get("skipped")])
