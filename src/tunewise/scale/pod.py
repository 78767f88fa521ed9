"""A training pod's command: `python -m tunewise.scale.pod /etc/tunewise/job.yaml`.

It does three things around `tunewise train` (which it runs as a child process, so training is
exactly what it is anywhere else):
- data files named by URL (s3://...; the Kubernetes executor uploads a job's files there) are
  downloaded to the pod's disk and the spec is pointed at them;
- on the pod that holds rank 0, the run's record files are pushed to object storage every few
  seconds and once more at the end (scale/run_mirror.py), so the server can follow the run;
- SIGTERM (Kubernetes deleting the pod, Kueue preempting the workload) is passed on to training,
  which checkpoints the step under way and exits with status 3; the pod exits with training's status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tunewise.scale.run_mirror import RUN_URL_ENV, RunPusher

PUSH_EVERY_S = float(os.environ.get("TUNEWISE_RUN_PUSH_S", "5"))
TRAIN = (sys.executable, "-m", "tunewise", "train")  # the command, given the spec's path
DATA_FIELDS = ("train", "validation")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tunewise.scale.pod SPEC.yaml", file=sys.stderr)
        return 2
    raw = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8")) or {}
    home = Path(os.environ.get("TUNEWISE_HOME", ".tunewise")).resolve()
    local = home / "pod"
    raw = fetch_data(raw, local / "data")
    spec_path = local / "job.yaml"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    pusher = _pusher(raw, home, spec_path)
    child = subprocess.Popen([*TRAIN, str(spec_path)])
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: child.send_signal(number))
    while True:
        try:
            code = child.wait(timeout=PUSH_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            if pusher is not None:
                pusher.push()
    if pusher is not None:
        pusher.push()
    return code


def fetch_data(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The spec with data files named by URL downloaded into `folder` and named by their local path."""
    import fsspec

    data = dict(raw.get("data") or {})
    for field in DATA_FIELDS:
        url = data.get(field)
        if not isinstance(url, str) or "://" not in url:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{field}-{Path(url.split('?')[0]).name or 'data'}"
        fsspec.core.url_to_fs(url)[0].get_file(url, str(target))
        data[field] = str(target)
    return {**raw, "data": data} if data else raw


def _pusher(raw: dict[str, Any], home: Path, spec_path: Path) -> RunPusher | None:
    """The run-file pusher, on the pod holding rank 0 of a job that names where to push."""
    url = os.environ.get(RUN_URL_ENV)
    if not url:
        return None
    from tunewise.errors import TunewiseError
    from tunewise.spec import load_spec
    from tunewise.train.run import run_name_for

    try:
        spec = load_spec(raw=raw)
    except TunewiseError:
        return None  # training says what is wrong with the spec, in its log and status
    if spec.resources.resolved_node_rank() != 0:
        return None
    return RunPusher(home / "runs" / run_name_for(spec, spec_path), url)


if __name__ == "__main__":
    sys.exit(main())
