"""Store rows as OpenAI objects. Rows are read by attribute only, so this module needs no database."""

from __future__ import annotations

from typing import Any

from tunewise.openai_api.files import FileObject, Upload, UploadPart
from tunewise.openai_api.fine_tuning import (
    CheckpointMetrics,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobError,
    JobHyperparameters,
    MethodOut,
)

_METHOD_TYPE = {"preference": "dpo", "rl": "reinforcement"}


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def file_object(row: Any) -> FileObject:
    return FileObject(id=row.id, bytes=row.bytes, created_at=int(row.created_at), filename=row.filename,
                      purpose=row.purpose, status=row.status, expires_at=_int(row.expires_at),
                      status_details=row.status_details)


def upload_object(row: Any, file: Any | None = None) -> Upload:
    return Upload(id=row.id, bytes=row.bytes, created_at=int(row.created_at), expires_at=int(row.expires_at),
                  filename=row.filename, purpose=row.purpose, status=row.status,
                  file=file_object(file) if file is not None else None)


def upload_part(row: Any) -> UploadPart:
    return UploadPart(id=row.id, created_at=int(row.created_at), upload_id=row.upload_id)


def _method_type(spec: dict[str, Any]) -> str:
    from tunewise.methods import get_method

    method = spec.get("method") or {}
    name = method.get("name", "lora") if isinstance(method, dict) else method
    try:
        return _METHOD_TYPE.get(get_method(name).kind, "supervised")
    except Exception:
        return "supervised"


def job_method(row: Any) -> MethodOut:
    if row.method:
        return MethodOut(**row.method)
    kind = _method_type(row.spec)
    return MethodOut(type=kind, **{kind: {"hyperparameters": job_hyperparameters(row).model_dump()}})


def job_hyperparameters(row: Any) -> JobHyperparameters:
    if row.hyperparameters:
        return JobHyperparameters(**row.hyperparameters)
    if row.method:
        section = row.method.get(row.method.get("type"), {}) or {}
        given = section.get("hyperparameters") or {}
        return JobHyperparameters(**{k: given.get(k, "auto") for k in JobHyperparameters.model_fields})
    return JobHyperparameters(batch_size="auto", learning_rate_multiplier="auto", n_epochs="auto")


def fine_tuning_job(row: Any) -> FineTuningJob:
    training_file = row.training_file or next(iter(row.files or []), "")
    return FineTuningJob(
        id=row.id, created_at=int(row.created_at), error=JobError(**row.error) if row.error else None,
        fine_tuned_model=row.fine_tuned_model, finished_at=_int(row.finished_at),
        hyperparameters=job_hyperparameters(row), model=row.model, organization_id=row.team,
        result_files=list(row.result_files or []), seed=row.seed, status=row.status,
        trained_tokens=row.trained_tokens, training_file=training_file, validation_file=row.validation_file,
        estimated_finish=_int(row.estimated_finish) if row.status == "running" else None,
        integrations=row.integrations or None, metadata=row.job_metadata, method=job_method(row))


def job_event(row: Any) -> FineTuningJobEvent:
    return FineTuningJobEvent(id=row.id, created_at=int(row.created_at), level=row.level, message=row.message,
                              data=row.data, type=row.type)


def job_checkpoint(row: Any) -> FineTuningJobCheckpoint:
    return FineTuningJobCheckpoint(id=row.id, created_at=int(row.created_at), fine_tuned_model_checkpoint=row.model_id,
                                   fine_tuning_job_id=row.job_id, metrics=CheckpointMetrics(**(row.metrics or {})),
                                   step_number=row.step)
