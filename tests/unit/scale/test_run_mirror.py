"""A pod's run files pushed to object storage and pulled by the server; its data fetched by URL."""

from __future__ import annotations

import uuid

import fsspec

from tunewise.scale.pod import fetch_data
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
    raw = fetch_data({"name": "x", "data": {"train": url, "validation": "/data/val.jsonl"}}, tmp_path / "data")
    assert raw["data"]["train"] == str(tmp_path / "data" / "train-train.jsonl")
    assert (tmp_path / "data" / "train-train.jsonl").read_bytes() == b'{"messages": []}\n'
    assert raw["data"]["validation"] == "/data/val.jsonl"  # a path is the image's or a volume's: left alone
