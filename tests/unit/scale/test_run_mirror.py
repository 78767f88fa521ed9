"""The pod's side on Kubernetes: run files pushed to object storage and pulled by the server, data
fetched by URL, SIGTERM passed on to training and its last status pushed."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid

import fsspec
import yaml

from tunewise.scale import pod
from tunewise.scale.run_mirror import RunPusher, pull_run_files, run_url_for


def test_the_pod_pushes_what_changed_and_the_server_pulls_it(tmp_path):
    url = run_url_for(f"memory://bucket-{uuid.uuid4().hex[:8]}/jobs/ftjob-1/")
    assert url.endswith("/jobs/ftjob-1/run")
    pod, server = tmp_path / "pod", tmp_path / "server"
    pod.mkdir()
    assert pull_run_files(url, server) == 0  # nothing pushed yet: nothing to read, no error

    pusher = RunPusher(pod, url)
    (pod / "status.json").write_text('{"state": "running", "step": 1}')
    (pod / "metrics.jsonl").write_text('{"step": 1}\n')
    (pod / "model.safetensors").write_bytes(b"not a run file")
    assert pusher.push() == 2 and pusher.push() == 0  # unchanged files are not sent again
    assert pull_run_files(url, server) == 2
    assert (server / "status.json").read_text() == '{"state": "running", "step": 1}'
    assert not (server / "model.safetensors").exists()

    with (pod / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 2}\n')
    assert pusher.push() == 1
    assert pull_run_files(url, server) == 1  # only what changed is replaced
    assert (server / "metrics.jsonl").read_text().splitlines()[-1] == '{"step": 2}'


def test_data_named_by_url_is_fetched_for_training(tmp_path):
    url = f"memory://data-{uuid.uuid4().hex[:8]}/train.jsonl"
    fsspec.filesystem("memory").pipe_file(url, b'{"messages": []}\n')
    raw = pod.fetch_data({"name": "x", "data": {"train": url, "validation": "/data/val.jsonl"}}, tmp_path / "data")
    assert raw["data"]["train"] == str(tmp_path / "data" / "train-train.jsonl")
    assert (tmp_path / "data" / "train-train.jsonl").read_bytes() == b'{"messages": []}\n'
    assert raw["data"]["validation"] == "/data/val.jsonl"  # a path is the image's or a volume's: left alone


STOPPING_TRAINER = """
import json, signal, sys, time
from pathlib import Path

run = Path(sys.argv[1])
run.mkdir(parents=True, exist_ok=True)
(run / "status.json").write_text(json.dumps({"state": "running", "step": 1}))
def stop(signum, frame):  # what tunewise train does on SIGTERM: checkpoint, record it, exit 3
    (run / "status.json").write_text(json.dumps({"state": "stopped", "step": 2}))
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
(run / "ready").touch()
time.sleep(60)
"""


def test_the_pod_passes_sigterm_on_to_training_and_pushes_its_last_status(tmp_path, monkeypatch, tiny_model_dir):
    url = f"memory://pod-{uuid.uuid4().hex[:8]}/jobs/bot/run"
    home = tmp_path / "home"
    run_dir = home / "runs" / "bot"
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"name": "bot", "base_model": str(tiny_model_dir), "method": "lora",
                                    "data": {"train": "/data/chat.jsonl"}}))
    trainer = tmp_path / "trainer.py"
    trainer.write_text(STOPPING_TRAINER)
    monkeypatch.setattr(pod, "TRAIN", (sys.executable, str(trainer), str(run_dir)))
    monkeypatch.setattr(pod, "PUSH_EVERY_S", 0.05)
    monkeypatch.setenv("TUNEWISE_HOME", str(home))
    monkeypatch.setenv("TUNEWISE_RUN_URL", url)

    def kubelet() -> None:  # Kubernetes deleting the pod: SIGTERM to its first process
        deadline = time.monotonic() + 30
        while not (run_dir / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    threading.Thread(target=kubelet, daemon=True).start()
    try:
        assert pod.main([str(spec)]) == 3
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    pulled = tmp_path / "server"
    pull_run_files(url, pulled)
    assert json.loads((pulled / "status.json").read_text()) == {"state": "stopped", "step": 2}
