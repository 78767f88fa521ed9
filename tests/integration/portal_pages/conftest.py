"""One portal for this test package: the real control-plane app (SQLite store, MLflow registry in its
workspace, the serving engine on the tiny model) driven in process by TestClient, signed in as two
teams and the admin through `/api/session` (the cookie and CSRF token a browser gets).

Jobs are submitted through the API; their training is not run here (the control-plane tests do):
each finished job gets a run directory with a tiny random LoRA adapter, losses and an evaluation
gate, and then the control plane's own success transition (`lifecycle.succeed`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.control_plane_support import cpu_pool
from tests.helpers import write_chat_dataset
from tests.integration.serving.adapters import make_adapter_run, runfactory
from tests.portal_support import team_keys


@dataclass
class Portal:
    app: Any
    home: Path
    base: Path
    clients: dict[str, Any] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)  # role -> job id
    keys: dict[str, str] = field(default_factory=dict)

    def browser(self, team: str = "team-a") -> Any:
        return self.clients[team]


def _sign_in(app: Any, key: str) -> tuple[Any, str]:
    from fastapi.testclient import TestClient

    client = TestClient(app, follow_redirects=False)
    response = client.post("/api/session", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert client.cookies.get("tunewise_session")
    return client, response.json()["csrf_token"]


def _gate(run_dir: Path, base: Path, *, passed: bool) -> None:
    from tunewise.eval import run_gate, write_results
    from tunewise.eval.report import EvalReport, ForgettingResult
    from tunewise.eval.spectrum import adapter_spectrum

    report = EvalReport(run=run_dir.name, created_at="now", base_model=str(base), method="lora", n_examples=6,
                        metrics={"exact_match": 0.9 if passed else 0.2}, base_metrics={"exact_match": 0.1},
                        forgetting=ForgettingResult(text_ppl_base=20.0, text_ppl_tuned=21.0, ppl_increase=0.05,
                                                    paragraphs=3))
    report.spectrum = adapter_spectrum(run_dir / "artifact", "lora")
    write_results(run_dir, report, run_gate(report, {"exact_match": ">= 0.8"}))


def finish_job(app: Any, job_id: str, base: Path, *, seed: int, passed: bool = True, losses: float = 3.0) -> None:
    """What a finished training leaves (adapter, losses, eval gate), then the control plane's success."""
    from sqlalchemy import select

    from tunewise.jobs import lifecycle
    from tunewise.jobs.store.models import Job

    ctx = app.state.ctx
    run_dir = make_adapter_run(ctx.settings.home / "runs", job_id, base, seed=seed)
    rows = [{"step": s, "train_loss": losses - 0.3 * s, "time": float(s)} for s in range(1, 5)]
    rows.append({"step": 4, "val_loss": losses - 0.8, "time": 4.5})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _gate(run_dir, base, passed=passed)
    with ctx.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        job.status, job.step, job.total_steps = "running", 4, 4
        lifecycle.succeed(session, ctx.settings, ctx.blobs, job, None)


WHOLE_CARD = {"type": "h100-80gb", "count": 1}
SLICED_CARD = {"type": "h100-80gb", "count": 1, "mig": ["3g.40gb", "3g.40gb"]}
GPU_POOL = {"name": "gpu", "nodes": [{"name": "g1", "gpus": [WHOLE_CARD, SLICED_CARD]}]}


def place_job(app: Any, job_id: str, slot: dict[str, Any]) -> None:
    """A job running where the scheduler put it (the store's placement), on the GPU pool."""
    from sqlalchemy import select

    from tunewise.jobs.store.models import Job

    with app.state.ctx.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        job.status, job.pool, job.placement = "running", "gpu", {"slots": [{"cpu_slots": 0, **slot}]}


def fail_job(app: Any, job_id: str) -> None:
    from sqlalchemy import select

    from tunewise.jobs import lifecycle
    from tunewise.jobs.store.models import Job

    with app.state.ctx.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        lifecycle.fail(session, job, "server_error", "The training process ran out of memory at step 3")


def submit(client: Any, tmp: Path, *, epochs: int = 1, suffix: str = "demo") -> str:
    path = write_chat_dataset(tmp / f"train-{suffix}-{epochs}.jsonl", rows=12)
    with path.open("rb") as fh:
        file = client.post("/v1/files", files={"file": (path.name, fh)}, data={"purpose": "fine-tune"},
                           headers=client.bearer)
    assert file.status_code == 200, file.text
    job = client.post("/v1/fine_tuning/jobs", headers=client.bearer,
                      json={"model": "tiny", "training_file": file.json()["id"], "suffix": suffix,
                            "hyperparameters": {"n_epochs": epochs}})
    assert job.status_code == 200, job.text
    return job.json()["id"]


@pytest.fixture(scope="package")
def portal(tmp_path_factory, tiny_model_dir, mlflow_template) -> Portal:
    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    home = tmp_path_factory.mktemp("portal")
    runfactory().install_mlflow_store(mlflow_template, home)
    scheduling = cpu_pool(1)
    scheduling["pools"].append(GPU_POOL)
    scheduling["quotas"] = [{"team": "team-a", "gpus": 1}]
    config = {"workspace": str(home), "models": {"tiny": str(tiny_model_dir)}, "scheduling": scheduling}
    app = create_app(ServerConfig.model_validate(config), run_loop=False)
    portal = Portal(app, home, tiny_model_dir)
    portal.keys = team_keys(app)
    for team, key in portal.keys.items():
        portal.clients[team], portal.csrf[team] = _sign_in(app, key)
        portal.clients[team].bearer = {"authorization": f"Bearer {key}"}
    tmp = tmp_path_factory.mktemp("portal-data")
    a = portal.clients["team-a"]
    portal.jobs = {"good": submit(a, tmp, suffix="good"), "weak": submit(a, tmp, epochs=2, suffix="weak"),
                   "better": submit(a, tmp, epochs=3, suffix="better"),
                   "broken": submit(a, tmp, suffix="broken"),
                   "other": submit(portal.clients["team-b"], tmp, suffix="other"),
                   "on-gpu": submit(a, tmp, suffix="on-gpu"),
                   "on-slice": submit(portal.clients["team-b"], tmp, suffix="on-slice")}
    finish_job(app, portal.jobs["good"], tiny_model_dir, seed=1)
    finish_job(app, portal.jobs["weak"], tiny_model_dir, seed=2, passed=False, losses=3.5)
    finish_job(app, portal.jobs["better"], tiny_model_dir, seed=3, losses=2.8)
    finish_job(app, portal.jobs["other"], tiny_model_dir, seed=4)
    fail_job(app, portal.jobs["broken"])
    place_job(app, portal.jobs["on-gpu"], {"node": "g1", "gpu": 0, "memory_gib": 40.0})
    place_job(app, portal.jobs["on-slice"], {"node": "g1", "gpu": 1, "mig_slice": "gpu1/mig0", "memory_gib": 39.4})
    yield portal
    engine = app.state.ctx.extras.get("serving")
    if engine is not None:
        engine.close()
