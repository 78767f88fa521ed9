"""`tunewise register RUN --name NAME`: a new model version carrying the run's lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.registry.errors import RegistryError
from tunewise.registry.events import record_event
from tunewise.registry.versions import (
    METRIC_PREFIX,
    SHA_PREFIX,
    VersionInfo,
    quote_name,
    current_user,
    get_version,
    now_iso,
)

_TAG_VALUE_MAX = 5000  # MLflow's limit on a model version tag value


def _check_registrable(run_dir: Path) -> dict[str, Any]:
    from tunewise.eval.runs import read_status

    status = read_status(run_dir)
    state = status.get("state", "unknown")
    if state == "running":
        raise RegistryError(f"run {run_dir.name} is still running", hint="register it once training has finished")
    if state == "failed" and status.get("reason") != "gate":
        raise RegistryError(f"run {run_dir.name} failed ({status.get('error', 'no reason given')}); "
                            "its artifact is not a finished model")
    if not (run_dir / "artifact" / "tunewise.json").is_file():
        raise RegistryError(f"run {run_dir.name} has no artifact/ (tunewise.json missing)",
                            hint="only finished training runs can be registered")
    return status


def lineage_tags(run_dir: Path) -> dict[str, str]:
    """Tags tying a version to its inputs: base model and its hash, data hash, spec hash, method,
    metrics, gate verdict, and one sha256 tag per artifact file."""
    from tunewise.eval.pair import base_model_dir
    from tunewise.eval.report import read_report, read_verdict
    from tunewise.eval.runs import read_spec_dict
    from tunewise.models.artifact import read_artifact_info
    from tunewise.registry.lineage import (
        dataset_digest,
        dataset_files,
        file_manifest,
        manifest_digest,
        spec_digest,
        tree_digest,
    )
    from tunewise.workspace import home

    info = read_artifact_info(run_dir / "artifact")
    manifest = file_manifest(info.path)
    try:
        base_hash = tree_digest(base_model_dir(info), cache_file=home() / "registry" / "hash-cache.json")
    except Exception as err:  # base model gone: record that rather than refuse the registration
        base_hash = f"unavailable ({type(err).__name__})"
    verdict, report, spec = read_verdict(run_dir), read_report(run_dir), read_spec_dict(run_dir)
    tags = {
        "tunewise.run": run_dir.name,
        "tunewise.run_dir": str(run_dir),
        "tunewise.method": info.method,
        "tunewise.adapter": str(info.adapter).lower(),
        "tunewise.base_model": info.base_model,
        "tunewise.base_model_sha256": base_hash,
        "tunewise.dataset_sha256": dataset_digest(run_dir, spec) or "unknown",
        "tunewise.dataset_files": ", ".join(f"{role}={path}" for role, path in dataset_files(spec).items()) or "none",
        "tunewise.spec_sha256": spec_digest(spec) or "unknown",
        "tunewise.artifact_sha256": manifest_digest(manifest),
        "tunewise.gate": "none" if verdict is None else ("passed" if verdict.passed else "failed"),
        "tunewise.gate_criteria": str(len(verdict.criteria)) if verdict else "0",
        "tunewise.gate_summary": verdict.summary()[:_TAG_VALUE_MAX] if verdict else "not evaluated",
        "tunewise.registered_by": current_user(),
        "tunewise.registered_at": now_iso(),
    }
    if report is not None:
        for key, value in report.flat_metrics().items():
            if value is not None and not key.startswith("gain."):
                tags[f"{METRIC_PREFIX}{key}"] = repr(float(value))
    tags.update({f"{SHA_PREFIX}{rel}": digest for rel, digest in manifest.items()})
    return tags


def _mlflow_run(run_dir: Path) -> Any:
    from tunewise.eval.runs import read_spec_dict
    from tunewise.tracking import end_run, resume_run, start_run

    handle = resume_run(run_dir)
    if handle is None:  # trained without tracking: open a run now so the version has a home
        handle = start_run(run_dir, read_spec_dict(run_dir), report_to=[])
        end_run(handle, "completed")
    return handle


def _existing_version(client: Any, name: str, run_name: str, digest: str) -> str | None:
    for mv in client.search_model_versions(f"name = '{quote_name(name)}'"):
        tags = mv.tags or {}
        if tags.get("tunewise.run") == run_name or tags.get("tunewise.artifact_sha256") == digest:
            return str(mv.version)
    return None


def register_run(run: str | Path, name: str) -> VersionInfo:
    """Register a finished run as a new version of model `name`.

    Refused for running or crashed runs, and when `name` already has a version from this run or
    with an identical artifact (a version is never overwritten). Returns the new version.
    """
    from mlflow.exceptions import MlflowException

    from tunewise.eval.runs import resolve_run_dir
    from tunewise.tracking import mlflow_client

    run_dir = resolve_run_dir(run)
    _check_registrable(run_dir)
    tags = lineage_tags(run_dir)
    handle = _mlflow_run(run_dir)
    client = mlflow_client(handle.tracking_uri)
    try:
        client.create_registered_model(name, tags={"tunewise.managed": "true"},
                                       description="Fine-tuned with tunewise; see version tags for lineage.")
    except MlflowException as err:
        if getattr(err, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create registered model {name!r}: {err.message}") from None
    existing = _existing_version(client, name, run_dir.name, tags["tunewise.artifact_sha256"])
    if existing is not None:
        raise RegistryError(f"{name} version {existing} already holds run {run_dir.name} (or an identical artifact); "
                            "a registered version is never overwritten",
                            hint=f"use version {existing}, or register a new run")
    artifact_path = f"registered/{tags['tunewise.artifact_sha256'][:16]}"
    client.log_artifacts(handle.run_id, str(run_dir / "artifact"), artifact_path)
    mv = client.create_model_version(name, source=f"runs:/{handle.run_id}/{artifact_path}", run_id=handle.run_id,
                                     tags=tags, description=f"run {run_dir.name}: {tags['tunewise.gate_summary']}")
    record_event(client, name, {"action": "register", "version": str(mv.version), "run": run_dir.name,
                                "gate": tags["tunewise.gate"]})
    return get_version(name, mv.version, client)
