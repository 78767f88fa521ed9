"""`tunewise jobs submit|list|show|cancel|logs`: jobs on a tunewise server, with queue place and reason.

The server is --server (or TUNEWISE_SERVER); the key is TUNEWISE_API_KEY.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json

jobs_app = typer.Typer(help="Jobs on a tunewise server (see `tunewise server`).", no_args_is_help=True)
_SERVER = typer.Option(None, "--server", help="Server URL; default TUNEWISE_SERVER or http://127.0.0.1:8000.")
_JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _client(server: str | None):
    from tunewise.server.client import ControlPlaneClient

    return ControlPlaneClient(server)


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else ""


def queue_text(job: dict[str, Any]) -> str:
    """'#2: memory (needs 2 GPUs ...)' for a waiting job, progress for a running one."""
    queue = job.get("queue") or {}
    if job["status"] == "queued" and queue.get("position"):
        start = f", starts about {_when(queue['estimated_start'])}" if queue.get("estimated_start") else ""
        return f"#{queue['position']}: {queue.get('reason')} ({queue.get('detail')}{start})"
    if job["status"] == "running" and job.get("total_steps"):
        return f"step {job.get('step') or 0}/{job['total_steps']}" + (f", {job['stopping']}" if job.get("stopping") else "")
    return (job.get("error") or {}).get("message", "") if job["status"] == "failed" else ""


def _upload_local_files(client, spec: dict[str, Any], base: Path) -> None:
    """Replace local data paths in the spec (and its stages) with ids of freshly uploaded files; a path
    that does not exist is an error naming it."""
    sections = [spec, *(s for s in spec.get("stages") or [] if isinstance(s, dict))]
    for section in sections:
        data = section.get("data")
        if not isinstance(data, dict):
            continue
        for holder, key in ((data, "train"), (data, "validation"), (data.get("mix"), "path")):
            value = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(value, str) and not value.startswith("file-"):
                path = Path(value) if Path(value).is_absolute() else base / value
                uploaded = client.upload(path)
                console.print(f"uploaded {path.name} as {uploaded['id']} ({uploaded['status']}: "
                              f"{uploaded.get('status_details') or ''})", highlight=False)
                holder[key] = uploaded["id"]


@jobs_app.command("submit")
def submit(spec_file: Path = typer.Argument(..., help="Job spec (YAML); local data files are uploaded first."),
           model: str = typer.Option(None, "--model", help="A base model the server offers (default: its first)."),
           priority: str = typer.Option(None, "--priority", help="Priority class."),
           pool: str = typer.Option(None, "--pool", help="Pool to run in."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Validate, plan and place it; run nothing."),
           server: str = _SERVER, as_json: bool = _JSON) -> None:
    """Submit a job spec to the server (or dry-run it)."""
    import yaml

    from tunewise.errors import SpecError

    if not spec_file.is_file():
        raise SpecError(f"{spec_file}: job spec not found")
    raw = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise SpecError(f"{spec_file}: a job spec is a mapping of sections")
    client = _client(server)
    raw.pop("name", None)
    model = model or raw.pop("base_model", None)
    _upload_local_files(client, raw, spec_file.parent)
    body = {"spec": raw, "model": model, "priority": priority, "pool": pool}
    body = {k: v for k, v in body.items() if v is not None}
    result = client.request("POST", "/api/jobs/dry-run" if dry_run else "/api/jobs", json=body)
    if as_json:
        print_json(result)
    elif dry_run:
        _print_dry_run(result)
    else:
        console.print(f"submitted [bold]{result['id']}[/] ({result['status']}, priority {result['priority']}, "
                      f"pool {result['pool']})", highlight=False)


def _print_dry_run(result: dict[str, Any]) -> None:
    verdict = "[green]would run[/]" if result["ok"] else f"[red]would fail[/]: {result['error']['message']}"
    console.print(verdict, highlight=False)
    console.print(f"examples {result['examples']}, tokens per epoch {result['tokens']}; hyperparameters "
                  f"{result['hyperparameters']}", highlight=False)
    queue = result.get("queue") or {}
    if result.get("would_start_now"):
        console.print("queue: would start now")
    elif queue:
        console.print(f"queue: #{queue.get('position')} ({queue.get('reason')}: {queue.get('detail')})", highlight=False)


@jobs_app.command("list")
def list_jobs(status: str = typer.Option(None, "--status", help="Only jobs in this state."),
              limit: int = typer.Option(20, "--limit", min=1, max=10_000),
              server: str = _SERVER, as_json: bool = _JSON) -> None:
    """Your team's jobs, newest first, with queue place and reason."""
    from rich.table import Table

    params = {"limit": limit, **({"status": status} if status else {})}
    page = _client(server).request("GET", "/api/jobs", params=params)
    if as_json:
        print_json(page["data"])
        return
    table = Table(title="jobs")
    for column in ("id", "status", "method", "model", "priority", "pool", "queue / progress", "created"):
        table.add_column(column, overflow="fold")
    for job in page["data"]:
        table.add_row(job["id"], job["status"], job["method"], job["model"], job["priority"], job["pool"],
                      queue_text(job), _when(job["created_at"]))
    console.print(table)


@jobs_app.command("show")
def show(job_id: str = typer.Argument(...), server: str = _SERVER, as_json: bool = _JSON) -> None:
    """One job: state, queue place and reason, progress, model, latest events."""
    client = _client(server)
    job = client.request("GET", f"/api/jobs/{job_id}")
    events = client.request("GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 10})["data"]
    if as_json:
        print_json({**job, "events": events})
        return
    console.print(f"[bold]{job['id']}[/] {job['status']}  {job['method']} on {job['model']}  team {job['team']}  "
                  f"priority {job['priority']}  pool {job['pool']}", highlight=False)
    detail = queue_text(job)
    if detail:
        console.print(f"  {detail}", highlight=False)
    if job.get("fine_tuned_model"):
        console.print(f"  model: {job['fine_tuned_model']}", highlight=False)
    for event in reversed(events):
        if event.get("type") != "metrics":
            console.print(f"  {_when(event['created_at'])}  {event['message']}", highlight=False)


@jobs_app.command("cancel")
def cancel(job_id: str = typer.Argument(...), server: str = _SERVER) -> None:
    """Cancel a job in any state; a running one is stopped at once and its devices freed."""
    job = _client(server).request("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel")
    console.print(f"{job['id']}: {job['status']}", highlight=False)


@jobs_app.command("logs")
def logs(job_id: str = typer.Argument(...), follow: bool = typer.Option(False, "--follow", "-f",
                                                                         help="Keep streaming until the job ends."),
         server: str = _SERVER) -> None:
    """The job's training log."""
    for chunk in _client(server).stream_logs(job_id, follow):
        sys.stdout.write(chunk.decode("utf-8", "replace"))
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs", rich_help_panel=_panels.CONTROL_PLANE)
