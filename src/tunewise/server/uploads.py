"""OpenAI Uploads routes: a large file sent in parts, then completed into a File (or cancelled)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, UploadFile

from tunewise.jobs import uploads as jobuploads
from tunewise.jobs.events import audit
from tunewise.jobs.keys import Principal
from tunewise.openai_api import views
from tunewise.openai_api.errors import too_large
from tunewise.openai_api.files import Upload, UploadComplete, UploadCreate, UploadPart
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext, context

router = APIRouter(prefix="/v1", tags=["uploads"])


@router.post("/uploads", response_model=Upload, summary="Create an upload")
def create_upload(body: UploadCreate, who: Principal = Depends(principal),
                  ctx: ServerContext = Depends(context)) -> Upload:
    with ctx.session() as session:
        row = jobuploads.create_upload(session, team=who.team, filename=body.filename, purpose=body.purpose,
                                       size=body.bytes, mime_type=body.mime_type,
                                       max_bytes=ctx.config.limits.max_upload_bytes)
        audit(session, team=who.team, key_id=who.key_id, action="upload.create", object_id=row.id)
        return views.upload_object(row)


@router.post("/uploads/{upload_id}/parts", response_model=UploadPart, summary="Add a part to an upload")
def add_part(upload_id: str, data: UploadFile = File(..., description="The bytes of this part."),
             who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> UploadPart:
    limit = ctx.config.limits.max_part_bytes
    if data.size is not None and data.size > limit:
        raise too_large(f"data: a part of {data.size} bytes is over the limit of {limit} bytes", param="data")
    with ctx.session() as session:
        return views.upload_part(jobuploads.add_part(session, ctx.blobs, upload_id, who.scope(), data.file))


@router.post("/uploads/{upload_id}/complete", response_model=Upload, summary="Complete an upload")
def complete_upload(upload_id: str, body: UploadComplete, who: Principal = Depends(principal),
                    ctx: ServerContext = Depends(context)) -> Upload:
    with ctx.session() as session:
        upload, file = jobuploads.complete_upload(session, ctx.blobs, ctx.settings.scratch, upload_id, who.scope(),
                                                  body.part_ids, body.md5)
        audit(session, team=who.team, key_id=who.key_id, action="upload.complete", object_id=upload.id,
              detail={"file": file.id})
        return views.upload_object(upload, file)


@router.post("/uploads/{upload_id}/cancel", response_model=Upload, summary="Cancel an upload")
def cancel_upload(upload_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> Upload:
    with ctx.session() as session:
        upload = jobuploads.cancel_upload(session, ctx.blobs, upload_id, who.scope())
        audit(session, team=who.team, key_id=who.key_id, action="upload.cancel", object_id=upload.id)
        return views.upload_object(upload)
