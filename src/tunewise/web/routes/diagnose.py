"""The RAG diagnostic, from the new-job page: does the base model need new knowledge (fine-tune), or only
the right passage (retrieval)? The page is a GET form over `POST /api/diagnose`; uploads go through
the new-job page's upload action and come back here."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tunewise.web.api import APIFailure, PortalAPI
from tunewise.web.pages import Page, page

router = APIRouter()
NEEDS = (("knowledge", "new facts"), ("behaviour", "a behaviour, format or style"))
CHANGES = ("static", "monthly", "weekly", "daily")
FIELDS = ("model", "questions_file", "docs_file", "need", "changes")


@page(router, "/new/diagnose", "diagnose.html")
async def diagnose_page(request: Request, api: PortalAPI) -> Page:
    form = {k: v.strip() for k, v in request.query_params.items() if k in FIELDS and v.strip()}
    cluster = await api.get("/api/cluster")
    files = await api.get("/v1/files", limit=200)
    result = error = None
    if form.get("questions_file") and form.get("docs_file"):
        body = {**form, "rare_entities": request.query_params.get("rare_entities") == "true",
                "provenance": request.query_params.get("provenance") == "true"}
        try:
            result = await api.post("/api/diagnose", json=body)
        except APIFailure as failure:
            if failure.status in (401, 404):
                raise
            error = {"message": failure.message, "param": failure.param}
    view = {"form": form, "models": cluster["models"], "files": files["data"], "needs": NEEDS, "changes": CHANGES,
            "rare_entities": request.query_params.get("rare_entities") == "true",
            "provenance": request.query_params.get("provenance") == "true"}
    return Page({"request": form, "diagnosis": result, "error": error}, view=view, title="RAG or fine-tune?")
