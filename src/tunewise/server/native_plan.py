"""Native API for planning a job before it is submitted: methods and their defaults, the planner's table,
the RAG-or-fine-tune diagnostic, and job requests as YAML (download and upload)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunewise.jobs.keys import Principal
from tunewise.jobs.native import NativeJobRequest
from tunewise.jobs.planning import DiagnoseBody, PlanBody, diagnose, method_catalog, plan_job
from tunewise.jobs.spec_yaml import request_to_yaml, yaml_to_request
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext, context

router = APIRouter(prefix="/api", tags=["tunewise"])


@router.get("/methods", summary="Adaptation methods: kind, learning rates, options with their defaults")
def methods(who: Principal = Depends(principal)) -> dict:
    return {"object": "list", "data": method_catalog()}


@router.get("/specs/schema", summary="The job spec's JSON schema: every field with its type, default and help")
def spec_schema(who: Principal = Depends(principal)) -> dict:
    from tunewise.spec import JobSpec

    return JobSpec.model_json_schema()


@router.post("/plan", summary="The planner: memory, time and cost per mode on a pool, and the recommendation")
async def plan(body: PlanBody, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    def run() -> dict:
        with ctx.session() as session:
            return plan_job(session, ctx.settings, ctx.blobs, ctx.controller.policy, body, who.scope())

    return await asyncio.to_thread(run)  # tokenizing the training file takes a while: keep the loop free


@router.post("/diagnose", summary="RAG or fine-tune? The base model answers closed-book, with retrieval, with "
             "the gold passage")
async def rag_diagnosis(body: DiagnoseBody, who: Principal = Depends(principal),
                        ctx: ServerContext = Depends(context)) -> dict:
    def run() -> dict:
        with ctx.session() as session:
            return diagnose(session, ctx.settings, ctx.blobs, body, who.scope())

    return await asyncio.to_thread(run)


# The YAML answer is documented beside the JSON error bodies: a PlainTextResponse response_class
# would document every status (the 400s too) as text.
@router.post("/specs/yaml", summary="A job request as YAML (what the portal downloads)",
             response_class=StreamingResponse, responses={200: {"content": {"application/yaml": {}}}})
def spec_yaml(body: NativeJobRequest, who: Principal = Depends(principal)) -> PlainTextResponse:
    return PlainTextResponse(request_to_yaml(body), media_type="application/yaml")


class YamlText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(max_length=1 << 20, description="A job request, or a bare job spec, as YAML.")
    source: str = Field("spec.yaml", max_length=200, description="Name used in messages (file:line).")


@router.post("/specs/parse", response_model=NativeJobRequest, summary="Read a YAML job request or job spec")
def spec_parse(body: YamlText, who: Principal = Depends(principal)) -> NativeJobRequest:
    return yaml_to_request(body.yaml, source=body.source)
