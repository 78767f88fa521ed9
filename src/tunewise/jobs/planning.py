"""Advice before a job is submitted: the planner's table for an offered model on a pool, the RAG-or-
fine-tune diagnostic, and the options and defaults of every method.

Requests name things the client owns or the server offers (file ids, model names, pools); this
module turns them into the planner's inputs, so no path or hub id ever comes from a request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.files import get_file
from tunewise.jobs.policy import SchedulingPolicy
from tunewise.jobs.settings import JobSettings
from tunewise.openai_api.errors import bad_request
from tunewise.plan.request import Objective


class PlanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=100, description="A base model this server offers (default: the first).")
    objective: Objective = Field("instruction", description="What the fine-tune is for; it drives the recommendation.")
    pool: str | None = Field(None, max_length=64, description="Plan for this pool's GPU type (CPU pools plan for CPU).")
    training_file: str | None = Field(None, max_length=64, description="A training file of yours: rows and tokens "
                                      "give time and cost.")
    seq_len: int = Field(1024, ge=8, le=131072, description="Sequence length in tokens.")
    micro_batch: int = Field(4, ge=1, le=4096, description="Sequences per forward pass per GPU.")
    epochs: float = Field(1.0, gt=0, le=1000, description="Passes over the data.")
    variants: int = Field(1, ge=1, le=10_000, description="Fine-tuned variants of this base you will need.")
    budget_usd: float | None = Field(None, gt=0, le=1e9, description="Most the training may cost, in USD.")


class DiagnoseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=100, description="A base model this server offers (default: the first).")
    questions_file: str = Field(max_length=64, description="JSONL file of yours: question, answer, optional "
                                "gold_passage.")
    docs_file: str = Field(max_length=64, description="JSONL file of yours with a `text` field per passage.")
    need: Literal["knowledge", "behaviour"] = "knowledge"
    changes: Literal["static", "monthly", "weekly", "daily"] = "static"
    rare_entities: bool = False
    provenance: bool = False
    top_k: int = Field(3, ge=1, le=20)


def offered_model(settings: JobSettings, name: str | None, param: str = "model") -> tuple[str, str]:
    """(offered name, what it resolves to); 400 naming the offered models otherwise."""
    name = name or next(iter(settings.models))
    if name not in settings.models:
        raise bad_request(f"{param}: {name!r} is not offered by this server; available: "
                          f"{', '.join(sorted(settings.models))}", param=param, code="model_not_available")
    return name, settings.models[name]


def pool_device(policy: SchedulingPolicy, pool: str | None) -> tuple[str, str]:
    """(pool name, the planner's device for it): the pool's first GPU type, or `cpu`."""
    names = [p.name for p in policy.pools]
    name = pool or names[0]
    if name not in names:
        raise bad_request(f"pool: {name!r} is not declared; pools: {', '.join(names)}", param="pool")
    gpu = next((g.type for p in policy.pools if p.name == name for n in p.nodes for g in n.gpus), None)
    return name, gpu or "cpu"


def _local_file(session: Session, settings: JobSettings, blobs: BlobStore, file_id: str, scope: str | None,
                param: str) -> str:
    row = get_file(session, file_id, scope, param=param)
    return str(blobs.local_path(row.storage_key, settings.scratch / "files"))


def plan_job(session: Session, settings: JobSettings, blobs: BlobStore, policy: SchedulingPolicy, body: PlanBody,
             scope: str | None) -> dict[str, Any]:
    """The planner's memory, time and cost per mode, with the recommendation and its reasons."""
    from tunewise.errors import TunewiseError
    from tunewise.plan import plan

    name, target = offered_model(settings, body.model)
    pool, device = pool_device(policy, body.pool)
    data = _local_file(session, settings, blobs, body.training_file, scope, "training_file") \
        if body.training_file else None
    try:
        report = plan(model=target, data=data, gpu=device, seq_len=body.seq_len, micro_batch=body.micro_batch,
                      epochs=body.epochs, objective=body.objective, variants=body.variants, budget_usd=body.budget_usd)
    except TunewiseError as err:
        message = err.message.replace(data, body.training_file) if data else err.message
        raise bad_request(message, code="plan_refused") from None
    out = report.to_json()
    out["model"]["name"] = name  # the offered name, never the server's path
    return {"object": "tunewise.plan", "pool": pool, "device": device, "objective": body.objective, **out}


def diagnose(session: Session, settings: JobSettings, blobs: BlobStore, body: DiagnoseBody,
             scope: str | None) -> dict[str, Any]:
    """Closed-book, retrieved and gold-passage answers of the base model, and the verdict: RAG or fine-tune."""
    from tunewise.errors import TunewiseError
    from tunewise.plan.diagnose import run_diagnosis

    name, target = offered_model(settings, body.model)
    questions = _local_file(session, settings, blobs, body.questions_file, scope, "questions_file")
    docs = _local_file(session, settings, blobs, body.docs_file, scope, "docs_file")
    try:
        result = run_diagnosis(questions, docs, model=target, top_k=body.top_k, need=body.need, changes=body.changes,
                               rare_entities=body.rare_entities, provenance=body.provenance)
    except TunewiseError as err:
        raise bad_request(err.message.replace(questions, body.questions_file).replace(docs, body.docs_file),
                          code="diagnosis_failed") from None
    return {"object": "tunewise.diagnosis", "model": name, **result.to_json()}


def method_catalog() -> list[dict[str, Any]]:
    """Every registered method: kind, default and usual learning rate, and its options with defaults."""
    from tunewise.methods import all_methods

    out = []
    for method in all_methods():
        schema = method.config_class.model_json_schema()
        options = {key: {"default": prop.get("default"), "description": prop.get("description", ""),
                         "type": prop.get("type") or _any_of(prop)}
                   for key, prop in schema.get("properties", {}).items()}
        out.append({"name": method.name, "description": method.description, "kind": method.kind,
                    "adapter": method.adapter, "default_learning_rate": method.default_learning_rate,
                    "usual_learning_rate": list(method.usual_learning_rate) if method.usual_learning_rate else None,
                    "options": options})
    return out


def _any_of(prop: dict[str, Any]) -> str | None:
    kinds = [p.get("type") for p in prop.get("anyOf", []) if p.get("type") not in (None, "null")]
    return kinds[0] if kinds else None
