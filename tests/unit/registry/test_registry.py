"""Registry on a real MLflow model registry (SQLite): lineage, promotion policy, rollback, integrity."""

from __future__ import annotations

import json
import re

import pytest

from tunewise.registry import (
    IntegrityError,
    PromotionError,
    RegistryError,
    fetch_version,
    get_version,
    history,
    list_models,
    load_version,
    promote,
    register_run,
    rollback,
)
from tunewise.registry.lineage import manifest_digest, sha256_file


def test_register_records_lineage_and_sha256_of_every_file(gated_run, registry_home):
    run_dir = gated_run("lineage-run")
    info = register_run(run_dir, "lineage")
    assert info.version == "1" and info.gate == "passed"
    tags = info.tags
    assert re.fullmatch(r"[0-9a-f]{64}", tags["tunewise.base_model_sha256"])
    train_file = registry_home / "datasets" / "lineage-run-train.jsonl"
    assert tags["tunewise.dataset_sha256"] == manifest_digest({"train": sha256_file(train_file)})
    assert tags["tunewise.dataset_files"] == f"train={train_file}"
    assert tags["tunewise.spec_sha256"] and tags["tunewise.method"] == "lora"
    assert tags["metric.exact_match"] == "0.9" and tags["metric.base.exact_match"] == "0.1"
    assert tags["tunewise.registered_by"] == "alice"
    artifact_files = {p.relative_to(run_dir / "artifact").as_posix() for p in (run_dir / "artifact").rglob("*")
                      if p.is_file()}
    assert set(info.manifest) == artifact_files and "adapter_model.safetensors" in artifact_files
    # the registered copy lives in the MLflow artifact store and verifies
    folder = fetch_version("lineage", "1")
    assert str(registry_home / "mlartifacts") in str(folder)

    with pytest.raises(RegistryError, match="never overwritten"):
        register_run(run_dir, "lineage")
    events = json.loads((registry_home / "registry" / "history" / "lineage.json").read_text())
    assert events[-1]["action"] == "register" and events[-1]["who"] == "alice"


def test_running_or_crashed_runs_are_not_registered(gated_run):
    from tunewise.eval.runs import update_status

    run_dir = gated_run("busy-run")
    update_status(run_dir, state="running")
    with pytest.raises(RegistryError, match="still running"):
        register_run(run_dir, "busy")
    update_status(run_dir, state="failed", reason="error", error="CUDA out of memory")
    with pytest.raises(RegistryError, match="out of memory"):
        register_run(run_dir, "busy")


def test_gate_policy_refuses_failed_and_ungated_versions(gated_run):
    failed = register_run(gated_run("failed-run", gate="failed"), "policy")
    assert failed.gate == "failed"
    for alias in ("staging", "production"):
        with pytest.raises(PromotionError, match="failed its evaluation gate"):
            promote("policy", failed.version, alias)

    ungated = register_run(gated_run("ungated-run", gate=None, seed=1), "policy")
    assert ungated.gate == "none"
    promote("policy", ungated.version, "staging")  # staging is for trying things out
    with pytest.raises(PromotionError, match="no passed evaluation gate"):
        promote("policy", ungated.version, "production")
    assert get_version("policy", "staging").version == ungated.version


def test_promote_rollback_and_recorded_history(gated_run, monkeypatch):
    v1 = register_run(gated_run("prod-a", seed=1), "prod")
    v2 = register_run(gated_run("prod-b", seed=2), "prod")
    first = promote("prod", v1.version, "production")
    assert (first["from"], first["to"], first["who"]) == (None, v1.version, "alice")
    monkeypatch.setenv("TUNEWISE_USER", "bob")
    second = promote("prod", v2.version, "production")
    assert (second["from"], second["to"], second["who"]) == (v1.version, v2.version, "bob")
    assert get_version("prod", "production").version == v2.version
    assert "bob" in get_version("prod", v2.version).tags["tunewise.production_since"]
    assert get_version("prod", v2.version).tags["tunewise.immutable"] == "true"

    back = rollback("prod")
    assert (back["action"], back["from"], back["to"]) == ("rollback", v2.version, v1.version)
    assert get_version("prod", "production").version == v1.version
    with pytest.raises(PromotionError, match="no earlier production version"):
        rollback("prod")

    actions = [(e["action"], e.get("alias"), e.get("to")) for e in history("prod")]
    assert actions[-3:] == [("promote", "production", "1"), ("promote", "production", "2"),
                            ("rollback", "production", "1")]
    listed = next(m for m in list_models() if m["name"] == "prod")
    assert listed["aliases"] == {"production": v1.version}
    assert [v["gate"] for v in listed["versions"]] == ["passed", "passed"]


def test_tampered_production_artifact_is_refused_at_load(gated_run):
    info = register_run(gated_run("tamper-run", seed=3), "tamper")
    promote("tamper", info.version, "production")
    model, tokenizer, artifact = load_version("tamper", "production")
    assert type(model).__name__ == "PeftModelForCausalLM" and artifact.method == "lora"

    folder = fetch_version("tamper", "production")
    weights = folder / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="adapter_model.safetensors: sha256 differs"):
        load_version("tamper", "production")

    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    (folder / "extra.py").write_text("print('surprise')\n")
    with pytest.raises(IntegrityError, match="extra.py: not part of the registered version"):
        load_version("tamper", info.version)


def test_unknown_names_and_aliases_are_clear_errors(gated_run):
    register_run(gated_run("lonely-run", seed=4), "lonely")
    with pytest.raises(RegistryError, match="no alias 'production'"):
        get_version("lonely", "production")
    with pytest.raises(RegistryError, match="no version 7"):
        get_version("lonely", "7")
    with pytest.raises(PromotionError, match="no production version"):
        rollback("lonely")
    with pytest.raises(PromotionError, match="staging, production"):
        promote("lonely", "1", "canary")
    with pytest.raises(RegistryError, match="no registered model named 'ghost'"):
        rollback("ghost")
    with pytest.raises(RegistryError, match="no registered model named 'ghost'"):
        get_version("ghost", "1")
