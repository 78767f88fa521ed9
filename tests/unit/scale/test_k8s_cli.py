"""`tunewise k8s render` on the command line, and `--apply` handing the manifests to kubectl."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from tunewise.cli import main


def _spec_file(tmp_path: Path, model_dir: Path, checkpoints: str = "s3://bucket/runs/bot") -> Path:
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump({"name": "bot", "base_model": str(model_dir), "method": "lora",
                                    "data": {"train": "/data/chat.jsonl"}, "checkpoint": {"dir": checkpoints}}))
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_render_prints_the_manifests_and_the_placement(tiny_model_dir, tmp_path, capsys):
    spec = _spec_file(tmp_path, tiny_model_dir)
    code, out, err = _run(capsys, "k8s", "render", str(spec), "resources.nproc_per_node=2", "--kind", "jobset",
                          "--gang", "volcano", "--volume", "datasets:/data")
    assert code == 0, err
    kinds = [o["kind"] for o in yaml.safe_load_all(out)]
    assert kinds == ["ConfigMap", "PodGroup", "JobSet"]
    assert "# placement: 1 node(s) x 2 process(es), nvidia.com/gpu" in err
    assert "base_model is" in err  # a local model directory the pods cannot see


def test_bad_input_is_one_line_naming_the_field(tiny_model_dir, tmp_path, capsys):
    code, _, err = _run(capsys, "k8s", "render", str(_spec_file(tmp_path, tiny_model_dir, "/mnt/ckpt")))
    assert code == 2 and "checkpoint.dir" in err and "Traceback" not in err
    code, _, err = _run(capsys, "k8s", "render", str(_spec_file(tmp_path, tiny_model_dir)), "--volume", "nocolon")
    assert code == 2 and "--volume 'nocolon'" in err


def _fake_kubectl(folder: Path, exit_code: int = 0) -> Path:
    """A kubectl that records its arguments and stdin (the test stands in for the cluster)."""
    folder.mkdir()
    script = folder / "kubectl"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {folder}/args\ncat > {folder}/stdin\n"
                      f"echo 'jobset.jobset.x-k8s.io/bot created'\n"
                      f"[ {exit_code} -eq 0 ] || echo 'error: the server has no resource type jobsets' >&2\n"
                      f"exit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def test_apply_pipes_the_manifests_to_kubectl(tiny_model_dir, tmp_path, capsys, monkeypatch):
    fake = _fake_kubectl(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    code, out, err = _run(capsys, "k8s", "render", str(_spec_file(tmp_path, tiny_model_dir)), "--apply",
                          "--dry-run", "server")
    assert code == 0, err
    assert (fake / "args").read_text().split() == ["apply", "-f", "-", "--dry-run=server"]
    assert (fake / "stdin").read_text() == out
    assert "bot created" in err


def test_apply_reports_what_kubectl_said(tiny_model_dir, tmp_path, capsys, monkeypatch):
    fake = _fake_kubectl(tmp_path / "bin", exit_code=1)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    code, _, err = _run(capsys, "k8s", "render", str(_spec_file(tmp_path, tiny_model_dir)), "--apply")
    assert code == 2 and "kubectl apply failed" in err and "jobsets" in err


def test_apply_without_kubectl_says_so(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = _run(capsys, "k8s", "render", str(_spec_file(tmp_path, tiny_model_dir)), "--apply")
    assert code == 2 and "kubectl is not on PATH" in err


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary")
def test_real_kubectl_without_a_cluster_is_a_clear_error(tiny_model_dir, tmp_path, capsys, monkeypatch):
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "not-a-real-token"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(config))
    code, _, err = _run(capsys, "k8s", "render", str(_spec_file(tmp_path, tiny_model_dir)), "--apply",
                        "--dry-run", "client")
    said = err.replace("\n", "")  # the console folds long lines
    assert code == 2 and "kubectl apply failed" in said and "127.0.0.1:9" in said
