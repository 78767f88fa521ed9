"""Checkpoints and artifacts on a real S3-compatible server (moto's, on localhost).

A checkpoint exists for readers only once its manifest is stored; a training process SIGKILLed in
the middle of uploading one leaves the previous checkpoint as the latest, and running the job again
resumes from it and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.helpers import tiny_spec, write_chat_dataset
from tests.s3_server import s3_endpoint, s3_environment  # noqa: F401  (a fixture)
from tests.thread_ranks import save_on_threads, write_shards
from tunewise.errors import CheckpointError
from tunewise.spec import load_spec
from tunewise.train.checkpoint import CheckpointManager
from tunewise.train.metrics_log import MetricsLog
from tunewise.train.run import read_status, run_training_job

@pytest.fixture
def bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh bucket; the environment points boto (and so s3fs) at the local server."""
    import boto3
    import s3fs

    for key, value in s3_environment(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


def _objects(url: str) -> list[str]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    root = url.removeprefix("s3://").rstrip("/") + "/"
    return sorted(p.removeprefix(root) for p in fs.find(root))


def _folder(tmp_path: Path, name: str, payload: bytes) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "weights.bin").write_bytes(payload)
    (folder / "state.json").write_text("{}")
    return folder


def test_an_upload_cut_short_is_never_read_and_is_cleaned_up(bucket, tmp_path, monkeypatch):
    root = f"{bucket}/run"
    manager = CheckpointManager(root, keep_last=3)
    manager.save(1, _folder(tmp_path, "one", b"1" * 5000))

    real_upload = manager._store.upload

    def dies_after_one_file(src, path):
        real_upload(src, path)
        raise KeyboardInterrupt("the process dies mid-upload")

    monkeypatch.setattr(manager._store, "upload", dies_after_one_file)
    monkeypatch.setattr(manager, "_abandon", lambda target: None)  # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        manager.save(2, _folder(tmp_path, "two", b"2" * 5000))
    monkeypatch.undo()
    # What a killed process leaves: files under step 2's upload prefix, no manifest.
    assert any(o.startswith("step-00000002/upload-") for o in _objects(root))
    assert [i.step for i in CheckpointManager(root).list()] == [1]
    fetched = CheckpointManager(root).fetch_latest(dest=tmp_path / "dl")
    assert fetched[0].step == 1 and (fetched[1] / "weights.bin").read_bytes() == b"1" * 5000

    # Saving step 1 again replaces it in one PUT of its manifest; the next save removes what step 2 left.
    again = CheckpointManager(root, keep_last=3)
    again.save(1, _folder(tmp_path, "one-again", b"3" * 5000))
    again.save(3, _folder(tmp_path, "three", b"4" * 5000))
    objects = _objects(root)
    assert not any("step-00000002" in o for o in objects)
    assert len({o.split("/")[1] for o in objects if o.startswith("step-00000001/upload-")}) == 1
    fetched = CheckpointManager(root).fetch(CheckpointManager(root).list()[0], dest=tmp_path / "dl2")
    assert (fetched / "weights.bin").read_bytes() == b"3" * 5000


def test_every_rank_uploads_its_own_shards(bucket, tmp_path):
    folder = write_shards(tmp_path / "staging", world=2)
    infos = save_on_threads(CheckpointManager(f"{bucket}/sharded"), 5, [folder, folder])
    assert infos[0].uri.endswith("/sharded/step-00000005")
    objects = _objects(f"{bucket}/sharded")
    assert sum(o.endswith(".distcp") for o in objects) == 2 and "step-00000005/manifest.json" in objects
    with pytest.raises(CheckpointError, match="not writable"):
        CheckpointManager("s3://no-such-bucket-here/x").check_writable()


KILLER = """
import os, signal, sys
from tunewise.train import checkpoint_store

real_upload = checkpoint_store.Store.upload
stored = []


def upload(self, src, path):
    result = real_upload(self, src, path)
    if "/step-00000004/" in path:
        stored.append(path)
        if len(stored) == 2:  # the second checkpoint is half uploaded
            os.kill(os.getpid(), signal.SIGKILL)
    return result


checkpoint_store.Store.upload = upload
from tunewise.cli import main

main(["train", sys.argv[1]])
"""


def test_killed_mid_upload_resumes_from_the_previous_checkpoint(bucket, tiny_model_dir, tmp_path, workspace):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=40)

    def raw(name: str, checkpoints: str | None) -> dict:
        spec = tiny_spec(tiny_model_dir, data, "lora", max_steps=6, learning_rate=1e-3)
        spec["name"] = name
        spec["checkpoint"] = {"dir": checkpoints, "every_steps": 2, "keep_best": 1, "keep_last": 2}
        return spec

    reference = run_training_job(load_spec(raw=raw("local", None)))
    root = f"{bucket}/runs/remote"
    spec_file = tmp_path / "remote.yaml"
    spec_file.write_text(yaml.safe_dump(raw("remote", root)))
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    done = subprocess.run([sys.executable, str(killer), str(spec_file)], env=dict(os.environ), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == -9, done.stderr[-2000:]
    assert [i.step for i in CheckpointManager(root).list()] == [2]
    assert any(o.startswith("step-00000004/upload-") for o in _objects(root))  # the half upload, not committed

    resumed = run_training_job(load_spec(raw=raw("remote", root)))
    assert resumed.resumed_from == 2 and resumed.steps == 6
    rows = MetricsLog(resumed.run_dir / "metrics.jsonl").read()
    expected = MetricsLog(reference.run_dir / "metrics.jsonl").read()
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[-1]["train_loss"] == pytest.approx(expected[-1]["train_loss"], abs=1e-4)
    assert rows[-1]["val_loss"] == pytest.approx(expected[-1]["val_loss"], abs=1e-4)
    assert [i.step for i in CheckpointManager(root).list()] == [4, 6]
    status = read_status(resumed.run_dir)
    assert status["artifact_uri"] == f"{root}/artifact"
    artifact = CheckpointManager(root).fetch_artifact(tmp_path / "fetched")
    assert (artifact / "adapter_model.safetensors").read_bytes() == \
        (resumed.run_dir / "artifact" / "adapter_model.safetensors").read_bytes()
