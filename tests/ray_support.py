"""A real two-node Ray cluster on this machine for the Ray executor's tests.

`ray start --head` plus a second `ray start --address`, each node with its own temp dir, few CPUs and
a small object store. Teardown ends exactly the processes of this cluster (found by its temp dirs,
with their children: the workers), never other Ray clusters on the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.control_plane_support import free_port

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is ~75 MB; the tests move no objects worth the name


@dataclass
class RayCluster:
    address: str  # the head's GCS address
    root: Path  # the nodes' temp dirs live under it

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes: its daemons (named by their temp dir) and everything they started."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if any(str(self.root) in part for part in proc.info["cmdline"] or ()):
                found[proc.pid] = proc
                for child in _children(proc):
                    found[child.pid] = child
        return list(found.values())

    def stop(self) -> None:
        procs = self.processes()
        for proc in procs:
            _send(proc, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=3)
        for proc in alive:
            _send(proc, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)


def start_cluster(root: Path, *, head_cpus: int = 2, worker_cpus: int = 1) -> RayCluster:
    """Start the head (and the second node) or raise with `ray start`'s output; stops what started on failure."""
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    cluster = RayCluster(address=f"127.0.0.1:{port}", root=root)
    common = [f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = [ray, "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}", "--num-gpus=0",
            "--include-dashboard=false", f"--dashboard-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
            f"--temp-dir={root / 'head'}", *common]
    second = [ray, "start", f"--address={cluster.address}", f"--num-cpus={worker_cpus}", "--num-gpus=0",
              f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
              f"--temp-dir={root / 'node2'}", *common]
    try:
        for command in (head, second):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        _wait_for_nodes(cluster, 2)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for_nodes(cluster: RayCluster, count: int, timeout: float = 60) -> None:
    from tunewise.scale.ray_cluster import alive_nodes

    deadline = time.monotonic() + timeout
    while len(alive_nodes(cluster.address)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray cluster at {cluster.address} has fewer than {count} nodes")
        time.sleep(0.5)


def worker_pids(address: str, class_name: str = "RayTrainWorker") -> list[int]:
    """PIDs of the alive Ray Train workers, from the GCS actor table (Ray's state, without the dashboard
    the `ray.util.state` API needs)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, namespace="tunewise-tests", log_to_driver=False)
    actors = ray._private.state.actors()  # the state API's source; ray.util.state needs ray[default]'s dashboard
    return sorted(a["Pid"] for a in actors.values() if a["State"] == "ALIVE" and class_name in a["ActorClassName"]
                  and a.get("Pid"))


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _send(proc: psutil.Process, sig: signal.Signals) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass
