"""OpenAI Files routes: upload (validated at once), list, retrieve, delete, content."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from tunewise.jobs import files as jobfiles
from tunewise.jobs.events import audit
from tunewise.jobs.keys import Principal
from tunewise.openai_api import views
from tunewise.openai_api.errors import too_large
from tunewise.openai_api.files import FileDeleted, FileList, FileObject
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext, context

router = APIRouter(prefix="/v1", tags=["files"])


@router.post("/files", response_model=FileObject, summary="Upload a file")
def upload_file(file: UploadFile = File(..., description="The JSONL (or .json/.csv/.parquet) file."),
                purpose: str = Form(..., description="fine-tune or user_data."),
                who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> FileObject:
    limit = ctx.config.limits.max_file_bytes
    if file.size is not None and file.size > limit:
        raise too_large(f"file: {file.size} bytes is over the limit of {limit} bytes; use the Uploads API for "
                        "larger files", param="file")
    with ctx.session() as session:
        row = jobfiles.create_file(session, ctx.blobs, ctx.settings.scratch, team=who.team,
                                   filename=file.filename or "upload", purpose=purpose, stream=file.file)
        audit(session, team=who.team, key_id=who.key_id, action="file.create", object_id=row.id,
              detail={"filename": row.filename, "bytes": row.bytes, "status": row.status})
        return views.file_object(row)


@router.get("/files", response_model=FileList, summary="List files")
def list_files(after: str | None = Query(None, max_length=64), limit: int = Query(10_000, ge=1, le=10_000),
               order: Literal["asc", "desc"] = "desc", purpose: str | None = Query(None, max_length=32),
               who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> FileList:
    with ctx.session() as session:
        page = jobfiles.list_files(session, who.scope(), after=after, limit=limit, order=order, purpose=purpose)
        data = [views.file_object(r) for r in page.items]
    return FileList(data=data, has_more=page.has_more, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


@router.get("/files/{file_id}", response_model=FileObject, summary="Retrieve a file")
def retrieve_file(file_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> FileObject:
    with ctx.session() as session:
        return views.file_object(jobfiles.get_file(session, file_id, who.scope()))


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete a file")
def delete_file(file_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> FileDeleted:
    with ctx.locked_session() as session:
        row = jobfiles.delete_file(session, ctx.blobs, file_id, who.scope())
        audit(session, team=who.team, key_id=who.key_id, action="file.delete", object_id=row.id)
    return FileDeleted(id=file_id, deleted=True)


@router.get("/files/{file_id}/content", summary="Retrieve a file's content",
            response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def file_content(file_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.session() as session:
        row = jobfiles.get_file(session, file_id, who.scope())
    stream = ctx.blobs.open(row.storage_key)

    def chunks():
        with stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"content-disposition": f'attachment; filename="{row.filename}"'})

