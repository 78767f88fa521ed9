"""New job: upload data and see its report at once, the planner's table with the recommendation
preselected, hyperparameters and the gate, the dry run's queue estimate, submit; the form as YAML.

The form is a GET form (`/new?spec.train.epochs=2...`), so every state of it is a link that reloads
the same; the state-changing steps (uploads, submit) are CSRF-protected posts that redirect back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tunewise.web.api import APIFailure, PortalAPI
from tunewise.web.charts import histogram
from tunewise.web.job_form import (
    EVAL_FIELDS,
    FILE_FIELDS,
    FORM_FIELDS,
    GATE_ROWS,
    field_specs,
    form_from_request,
    method_fields,
    query_of,
    request_from_form,
)
from tunewise.web.pages import Page, action, page

router = APIRouter()
DIAGNOSE_FILES = ("questions_file", "docs_file")
OBJECTIVES = (("instruction", "Instruction following, format, persona"), ("task_specific", "A narrow task"),
              ("domain_knowledge", "New domain knowledge"), ("alignment", "Alignment from preferences"))


async def _plan(api: PortalAPI, body: dict[str, Any], form: dict[str, str]) -> tuple[dict | None, str | None]:
    spec = body["spec"]
    request = {"model": body.get("model"), "pool": body.get("pool"),
               "objective": form.get("objective") or "instruction",
               "training_file": spec["data"]["train"], "seq_len": (spec.get("data") or {}).get("max_length", 1024),
               "micro_batch": (spec.get("train") or {}).get("micro_batch_size", 4),
               "epochs": (spec.get("train") or {}).get("epochs", 1)}
    try:
        return await api.post("/api/plan", json={k: v for k, v in request.items() if v is not None}), None
    except APIFailure as failure:
        return None, failure.message


async def _dry_run(api: PortalAPI, body: dict[str, Any]) -> tuple[dict | None, dict | None]:
    try:
        return await api.post("/api/jobs/dry-run", json=body), None
    except APIFailure as failure:
        return None, {"message": failure.message, "param": failure.param}


def _histogram(dry: dict | None):
    reports = (dry or {}).get("validation") or {}
    report = next(iter(reports.values()), None)
    hist = (report or {}).get("token_histogram")
    if not hist:
        return None
    too_long = (report.get("too_long") or {}).get("max_length")
    return histogram(hist["edges"], hist["counts"], chart_id="lengths", title="Example lengths in tokens",
                     x_label="tokens", marker=too_long, marker_label=f"max_length {too_long}")


@page(router, "/new", "new.html")
async def new_job(request: Request, api: PortalAPI) -> Page:
    form = dict(request.query_params)
    cluster, methods, schema, files = await asyncio.gather(
        api.get("/api/cluster"), api.get("/api/methods"), api.get("/api/specs/schema"),
        api.get("/v1/files", purpose="fine-tune", limit=200))
    body = request_from_form(form)
    train_id = ((body["spec"].get("data") or {}).get("train"))
    report = plan = dry = None
    plan_error = dry_error = None
    recommended = None
    if train_id:
        report = await api.get(f"/api/files/{train_id}/report")
        if report["status"] == "processed":
            plan, plan_error = await _plan(api, body, form)
            mode = ((plan or {}).get("recommendation") or {}).get("mode")
            recommended = mode if mode in {m["name"] for m in methods["data"]} else None
            if recommended and not form.get("spec.method.name"):  # preselected until the user picks another
                body["spec"].setdefault("method", {})["name"] = recommended
                form["spec.method.name"] = recommended
            dry, dry_error = await _dry_run(api, body)
    chosen = form.get("spec.method.name") or "lora"
    method = next((m for m in methods["data"] if m["name"] == chosen), None)
    data = {"request": body, "file_report": report, "plan": plan, "plan_error": plan_error, "dry_run": dry,
            "dry_run_error": dry_error, "recommended_method": recommended}
    view = {"form": form, "cluster": cluster, "methods": methods["data"], "method": method, "files": files["data"],
            "fields": field_specs(schema), "eval_fields": field_specs(schema, EVAL_FIELDS),
            "method_fields": method_fields(method), "objectives": OBJECTIVES, "gate_rows": range(GATE_ROWS),
            "lengths_chart": _histogram(dry), "query": query_of(form), "request_json": json.dumps(body)}
    return Page(data, view=view, title="New job")


def _shown_fields(methods: list[dict[str, Any]], method_name: str | None) -> set[str]:
    method = next((m for m in methods if m["name"] == method_name), None)
    names = {f"spec.{section}.{name}" for section, name, _ in FORM_FIELDS + EVAL_FIELDS}
    names |= {f["name"] for f in method_fields(method)} | set(FILE_FIELDS) | {"spec.method.name"}
    return names


@action(router, "/new/upload")
async def upload_data(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    upload = form.get("file")
    back = "/new/diagnose" if form.get("return_to") == "/new/diagnose" else "/new"
    targets = DIAGNOSE_FILES if back == "/new/diagnose" else FILE_FIELDS
    target = form.get("target") if form.get("target") in targets else targets[0]
    if upload is None or not getattr(upload, "filename", ""):
        raise APIFailure(400, "Choose a data file to upload", "file")
    made = await api.post("/v1/files", files={"file": (upload.filename, upload.file)}, data={"purpose": "fine-tune"})
    values = dict(_query_dict(form.get("return_query")))
    values[target] = made["id"]
    request.state.notice = (f"Uploaded {made['filename']} as {made['id']}: "
                            + ("it has rows that cannot be used (below)" if made["status"] == "error" else "it reads"))
    return f"{back}?{query_of(values)}" + ("#data" if back == "/new" else "")


@action(router, "/new/spec")
async def load_spec(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    upload = form.get("spec_file")
    if upload is None or not getattr(upload, "filename", ""):
        raise APIFailure(400, "Choose a YAML job spec to load", "spec_file")
    text = (await upload.read(1 << 20)).decode("utf-8", "replace")
    parsed = await api.post("/api/specs/parse", json={"yaml": text, "source": upload.filename[:200]})
    methods = (await api.get("/api/methods"))["data"]
    method = (parsed.get("spec") or {}).get("method")
    method_name = method.get("name") if isinstance(method, dict) else method
    values = form_from_request(parsed, _shown_fields(methods, method_name))
    request.state.notice = f"Loaded {upload.filename}"
    return f"/new?{query_of(values)}"


@router.get("/new/spec.yaml", include_in_schema=False)
async def download_spec(request: Request) -> Response:
    body = request_from_form(dict(request.query_params))
    try:
        text = await (await PortalAPI(request).with_session_csrf()).post("/api/specs/yaml", json=body)
    except APIFailure as failure:
        return Response(failure.message, status_code=failure.status, media_type="text/plain")
    return Response(text, media_type="application/yaml",
                    headers={"content-disposition": 'attachment; filename="tunewise-job.yaml"'})


@action(router, "/new/submit")
async def submit(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    try:
        body = json.loads(form.get("request") or "{}")
    except ValueError:
        raise APIFailure(400, "The form was damaged; check the job again before submitting", "request") from None
    job = await api.post("/api/jobs", json=body)
    request.state.notice = f"Submitted {job['id']}"
    return f"/jobs/{job['id']}"


def _query_dict(query: Any) -> list[tuple[str, str]]:
    return parse_qsl(str(query or ""), keep_blank_values=False)
