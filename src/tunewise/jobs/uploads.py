"""Uploads for large files, as OpenAI runs them: create, add parts, complete (or cancel).

An Upload expires an hour after it is created; its parts are stored as they come and joined in the
order `complete` names them into one File, validated like a direct upload.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.files import create_file_from_path, data_extension, display_name
from tunewise.jobs.store.models import File, Upload, UploadPart
from tunewise.jobs.store.pagination import owned
from tunewise.openai_api.errors import bad_request, conflict, not_found, too_large

UPLOAD_LIFETIME_S = 3600


def create_upload(session: Session, *, team: str, filename: str, purpose: str, size: int, mime_type: str,
                  max_bytes: int) -> Upload:
    from tunewise.openai_api.files import UPLOAD_PURPOSES

    if purpose not in UPLOAD_PURPOSES:
        raise bad_request(f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}, got {purpose!r}", param="purpose")
    if size > max_bytes:
        raise too_large(f"bytes: {size} is over this server's upload limit of {max_bytes} bytes", param="bytes")
    name = display_name(filename)
    data_extension(name, purpose)  # refuse an unsupported file type before any part is sent
    now = time.time()
    row = Upload(id=ids.new_id(ids.UPLOAD), team=team, filename=name, bytes=size, mime_type=mime_type,
                 purpose=purpose, status="pending", created_at=now, expires_at=now + UPLOAD_LIFETIME_S)
    session.add(row)
    session.flush()
    return row


def get_upload(session: Session, upload_id: str, scope: str | None) -> Upload:
    row = session.scalar(owned(Upload, scope).where(Upload.id == upload_id))
    if row is None:
        raise not_found(f"No such Upload object: {upload_id}", param="upload_id", code="upload_not_found")
    if row.status == "pending" and row.expires_at < time.time():
        row.status = "expired"
    return row


def _pending(row: Upload) -> None:
    if row.status != "pending":
        raise conflict(f"upload {row.id} is {row.status}; parts can only be added to a pending upload",
                       param="upload_id", code="upload_not_pending")


def add_part(session: Session, blobs: BlobStore, upload_id: str, scope: str | None, stream: BinaryIO) -> UploadPart:
    upload = get_upload(session, upload_id, scope)
    _pending(upload)
    part_id = ids.new_id(ids.PART)
    size = blobs.put_stream(part_id, stream)
    total = sum(session.scalars(select(UploadPart.bytes).where(UploadPart.upload_id == upload_id))) + size
    if total > upload.bytes:
        blobs.delete(part_id)
        raise bad_request(f"parts add up to {total} bytes, more than the {upload.bytes} bytes the upload declared",
                          param="data")
    row = UploadPart(id=part_id, upload_id=upload_id, bytes=size, storage_key=part_id, created_at=time.time())
    session.add(row)
    session.flush()
    return row


def complete_upload(session: Session, blobs: BlobStore, scratch: Path, upload_id: str, scope: str | None,
                    part_ids: list[str], md5: str | None) -> tuple[Upload, File]:
    """Join the named parts in order into a new File; the byte count (and md5, if given) must match."""
    upload = get_upload(session, upload_id, scope)
    _pending(upload)
    parts = {p.id: p for p in session.scalars(select(UploadPart).where(UploadPart.upload_id == upload_id))}
    missing = [p for p in part_ids if p not in parts]
    if missing:
        raise bad_request(f"part_ids: {missing[0]!r} is not a part of upload {upload_id}", param="part_ids")
    if len(set(part_ids)) != len(part_ids):
        raise bad_request("part_ids: a part is named twice", param="part_ids")
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, prefix="upload-", suffix=Path(upload.filename).suffix.lower()) as out:
        digest = hashlib.md5(usedforsecurity=False)
        for part_id in part_ids:
            with blobs.open(parts[part_id].storage_key) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
        out.flush()
        size = Path(out.name).stat().st_size
        if size != upload.bytes:
            raise bad_request(f"the parts hold {size} bytes but the upload declared {upload.bytes}", param="part_ids",
                              code="upload_size_mismatch")
        if md5 and md5.lower() != digest.hexdigest():
            raise bad_request(f"md5 {md5} does not match the parts' {digest.hexdigest()}", param="md5",
                              code="upload_checksum_mismatch")
        file = create_file_from_path(session, blobs, Path(out.name), team=upload.team, filename=upload.filename,
                                     purpose=upload.purpose)
    _drop_parts(session, blobs, parts.values())
    upload.status = "completed"
    upload.file_id = file.id
    return upload, file


def cancel_upload(session: Session, blobs: BlobStore, upload_id: str, scope: str | None) -> Upload:
    upload = get_upload(session, upload_id, scope)
    if upload.status != "pending":
        raise conflict(f"upload {upload_id} is {upload.status}; only a pending upload can be cancelled",
                       param="upload_id", code="upload_not_pending")
    _drop_parts(session, blobs, session.scalars(select(UploadPart).where(UploadPart.upload_id == upload_id)))
    upload.status = "cancelled"
    return upload


def _drop_parts(session: Session, blobs: BlobStore, parts) -> None:
    for part in list(parts):
        blobs.delete(part.storage_key)
        session.delete(part)


def attached_file(session: Session, upload: Upload) -> File | None:
    return session.scalar(select(File).where(File.id == upload.file_id)) if upload.file_id else None
