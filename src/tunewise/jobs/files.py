"""Training files: stored under an id of ours, validated at upload by the data pipeline.

The validation report is kept with the file; a file with row errors is kept too (status `error`,
the first problems with file:line in `status_details`) and a job that uses it fails with OpenAI's
`invalid_training_file` and the same detail. What cannot be a data file at all (an unsupported
extension, an empty or binary file) is refused at upload.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.store.models import File, Job
from tunewise.jobs.store.pagination import Page, cursor_page, owned
from tunewise.openai_api.errors import APIError, bad_request, conflict, not_found

DATA_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
STATUS_DETAIL_PROBLEMS = 5
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


def display_name(filename: str) -> str:
    """The client's file name as shown back: its last path part, odd characters replaced, 255 at most."""
    base = re.split(r"[\\/]", filename or "")[-1].strip() or "upload"
    return _SAFE_NAME.sub("_", base)[:255]


def data_extension(filename: str, purpose: str) -> str:
    ext = Path(display_name(filename)).suffix.lower()
    if purpose == "fine-tune" and ext not in DATA_EXTENSIONS:
        raise APIError(400, f"file: {display_name(filename)!r} is not a training file: use one of "
                       f"{', '.join(DATA_EXTENSIONS)} (JSONL as OpenAI's fine-tuning API takes it)",
                       param="file", code="invalid_file_format")
    return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""


def validation_report(path: Path, filename: str) -> dict:
    """The data pipeline's report for a stored file, with the client's file name in every location."""
    from tunewise.data import validate_file

    report = validate_file(path).to_dict()
    text = json.dumps(report).replace(json.dumps(str(path))[1:-1], filename.replace('"', "'"))
    return json.loads(text)


def _status_from(report: dict) -> tuple[str, str | None]:
    errors = report.get("errors") or []
    if not errors:
        kept = report.get("rows_kept")
        return "processed", f"{kept} rows in format {report.get('format')}"
    lines = [problem_text(e) for e in errors[:STATUS_DETAIL_PROBLEMS]]
    more = f" (and {len(errors) - STATUS_DETAIL_PROBLEMS} more)" if len(errors) > STATUS_DETAIL_PROBLEMS else ""
    return "error", "; ".join(lines) + more


def problem_text(problem: dict) -> str:
    """One problem of a report (a RowError's dict) as `file:line: field: reason`, like RowError prints it."""
    line = problem.get("line")
    where = f"{problem.get('file', '')}:{line}" if line is not None else str(problem.get("file", ""))
    field = f" {problem['field']}:" if problem.get("field") else ""
    return f"{where}:{field} {problem.get('reason', '')}"


def _refuse_unreadable(path: Path, filename: str) -> None:
    size = path.stat().st_size
    if size == 0:
        raise APIError(400, f"file: {filename!r} is empty", param="file", code="invalid_file_format")
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if b"\0" in head and path.suffix != ".parquet":
        raise APIError(400, f"file: {filename!r} is binary (NUL bytes), not UTF-8 text", param="file",
                       code="invalid_file_format")


def create_file(session: Session, blobs: BlobStore, scratch: Path, *, team: str, filename: str, purpose: str,
                stream: BinaryIO, expires_after_s: int | None = None) -> File:
    """Store an uploaded stream as a new file of `team`, validating training data on the way in."""
    from tunewise.openai_api.files import UPLOAD_PURPOSES

    if purpose not in UPLOAD_PURPOSES:
        raise bad_request(f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}, got {purpose!r}", param="purpose")
    name = display_name(filename)
    ext = data_extension(name, purpose)
    file_id = ids.new_id(ids.FILE)
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="incoming-", suffix=ext, dir=scratch)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = _copy(stream, out)
        return _store(session, blobs, tmp, file_id=file_id, team=team, name=name, ext=ext, purpose=purpose,
                      size=size, expires_after_s=expires_after_s)
    finally:
        tmp.unlink(missing_ok=True)


def create_file_from_path(session: Session, blobs: BlobStore, path: Path, *, team: str, filename: str,
                          purpose: str) -> File:
    """A new file from bytes already assembled on local disk (an Upload's parts)."""
    name = display_name(filename)
    ext = data_extension(name, purpose)
    return _store(session, blobs, path, file_id=ids.new_id(ids.FILE), team=team, name=name, ext=ext,
                  purpose=purpose, size=path.stat().st_size, expires_after_s=None)


def _store(session: Session, blobs: BlobStore, tmp: Path, *, file_id: str, team: str, name: str, ext: str,
           purpose: str, size: int, expires_after_s: int | None) -> File:
    report, status, details = None, "processed", None
    if purpose == "fine-tune":
        _refuse_unreadable(tmp, name)
        report = validation_report(tmp, name)
        status, details = _status_from(report)
    key = f"{file_id}{ext}"
    blobs.put_file(key, tmp)
    now = time.time()
    row = File(id=file_id, team=team, filename=name, bytes=size, purpose=purpose, status=status,
               status_details=details, storage_key=key, report=report, created_at=now,
               expires_at=now + expires_after_s if expires_after_s else None)
    session.add(row)
    session.flush()
    return row


def _copy(stream: BinaryIO, out: BinaryIO) -> int:
    size = 0
    while chunk := stream.read(1 << 20):
        out.write(chunk)
        size += len(chunk)
    return size


def get_file(session: Session, file_id: str, scope: str | None, *, param: str = "file_id") -> File:
    """The file if `scope` (a team, None for admin) may see it; otherwise 404 without saying whether it exists."""
    stmt = owned(File, scope).where(File.id == file_id, File.deleted.is_(False))
    row = session.scalar(stmt)
    if row is None:
        raise not_found(f"No such File object: {file_id}", param=param, code="file_not_found")
    return row


def list_files(session: Session, scope: str | None, *, after: str | None, limit: int, order: str = "desc",
               purpose: str | None = None) -> Page:
    stmt = owned(File, scope).where(File.deleted.is_(False))
    if purpose:
        stmt = stmt.where(File.purpose == purpose)
    return cursor_page(session, stmt, File, after=after, limit=limit, newest_first=order != "asc")


def delete_file(session: Session, blobs: BlobStore, file_id: str, scope: str | None) -> File:
    """Delete a file's bytes; a file a job still waits to train on is refused (409)."""
    row = get_file(session, file_id, scope)
    busy = session.scalar(select(Job.id).where(
        (Job.training_file == file_id) | (Job.validation_file == file_id),
        Job.status.in_(("validating_files", "queued", "running", "paused"))).limit(1))
    if busy is not None:
        raise conflict(f"file {file_id} is used by job {busy}, which has not finished; cancel it first",
                       param="file_id", code="file_in_use")
    blobs.delete(row.storage_key)
    row.deleted = True
    return row


def stored_paths(session: Session, blobs: BlobStore, scratch: Path, file_ids: list[str]) -> dict[str, File]:
    """Local path a job trains from -> the file row, for the files `file_ids` (to name them as the client does)."""
    if not file_ids:
        return {}
    rows = session.scalars(select(File).where(File.id.in_(file_ids)))
    return {str(blobs.local_path(r.storage_key, scratch, fetch=False)): r for r in rows}


def results_file(session: Session, blobs: BlobStore, *, team: str, job_id: str, csv_text: str) -> File:
    """Store a job's results CSV as a `fine-tune-results` file of its team."""
    file_id = ids.new_id(ids.FILE)
    key = f"{file_id}.csv"
    data = csv_text.encode()
    blobs.put_stream(key, io.BytesIO(data))
    row = File(id=file_id, team=team, filename=f"step_metrics_{job_id}.csv", bytes=len(data),
               purpose="fine-tune-results", status="processed", storage_key=key, created_at=time.time())
    session.add(row)
    session.flush()
    return row
