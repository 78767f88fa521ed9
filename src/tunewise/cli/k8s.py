"""`tunewise k8s render`: Kubernetes manifests for a training job, applied with kubectl on request."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli import _panels

k8s_app = typer.Typer(name="k8s", no_args_is_help=True,
                      help="Kubernetes: a training job as a Kubeflow TrainJob, PyTorchJob or JobSet, gang-admitted by "
                           "Kueue or Volcano.")


@k8s_app.command("render")
def render_command(
    spec_file: Path = typer.Argument(..., help="Job spec (YAML)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. checkpoint.dir=s3://bucket/runs/x"),
    kind: str = typer.Option("trainjob", "--kind", help="trainjob (Kubeflow Trainer v2), pytorchjob (Training "
                             "Operator v1) or jobset."),
    gang: str = typer.Option("kueue", "--gang", help="kueue (queue label, created suspended), volcano (PodGroup "
                             "with minMember) or none."),
    queue: str = typer.Option("default", "--queue", help="Kueue LocalQueue or Volcano queue."),
    priority_class: str = typer.Option(None, "--priority-class", help="Kueue: a WorkloadPriorityClass to render "
                                       "and use; Volcano: an existing PriorityClass."),
    priority: int = typer.Option(100, "--priority", help="Value of the rendered WorkloadPriorityClass."),
    image: str = typer.Option("ghcr.io/tunewise/tunewise:0.1.0", "--image", help="Container image with tunewise."),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace of the job."),
    gpu: str = typer.Option("a100-80gb", "--gpu", help="GPU type from the hardware catalog (tunewise plan --gpu); "
                            "cpu for CPU nodes."),
    params: float = typer.Option(None, "--params", help="Base model parameters (e.g. 8e9) when it is not on this "
                                 "machine, for the plan."),
    volume: list[str] = typer.Option(None, "--volume", help="CLAIM:/mount/path: a PersistentVolumeClaim every pod "
                                     "mounts (data, a local model); repeatable."),
    secret: str = typer.Option(None, "--secret", help="Secret with the object-store credentials (AWS_ACCESS_KEY_ID, "
                               "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3, ...)."),
    cpu_per_process: int = typer.Option(8, "--cpu-per-process", min=1, help="CPU cores requested per process."),
    memory_per_process: int = typer.Option(64, "--memory-per-process", min=1, help="GiB of host memory per process."),
    max_restarts: int = typer.Option(3, "--max-restarts", min=0, help="Whole-job restarts; each resumes from the "
                                     "last checkpoint."),
    apply: bool = typer.Option(False, "--apply", help="Apply the manifests with kubectl (kubectl apply -f -)."),
    dry_run: str = typer.Option("none", "--dry-run", help="With --apply: none, client or server (kubectl's --dry-run)."),
) -> None:
    """Print the manifests that run SPEC on Kubernetes: GPUs (or a MIG slice) and nodes from the plan, the spec in a
    ConfigMap, checkpoints on object storage. --apply hands them to kubectl."""
    import warnings

    from tunewise.errors import SpecError
    from tunewise.scale.kubectl import Kubectl
    from tunewise.scale.k8s import (
        K8sTarget,
        pod_path_warnings,
        render,
        to_yaml,
    )
    from tunewise.spec import load_spec
    from tunewise.train.run import run_name_for

    if dry_run not in ("none", "client", "server"):
        raise SpecError(f"--dry-run {dry_run!r} is not one of none, client, server")
    volumes = []
    for item in volume or []:
        claim, sep, path = item.partition(":")
        if not sep:
            raise SpecError(f"--volume {item!r}: expected CLAIM:/mount/path")
        volumes.append((claim, path))
    target = K8sTarget(image=image, namespace=namespace, kind=kind, gang=gang, queue=queue,
                       priority_class=priority_class, priority=priority, gpu=gpu, params=params,
                       volumes=tuple(volumes), secret=secret, cpu_per_process=cpu_per_process,
                       memory_gib_per_process=memory_per_process, max_restarts=max_restarts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = load_spec(spec_file, overrides or [])
    objects, placement = render(spec, target, name=run_name_for(spec, spec_file))
    text = to_yaml(objects)
    typer.echo(text, nl=False)
    notes = [f"placement: {placement.nnodes} node(s) x {placement.nproc_per_node} process(es)"
             + (f", {placement.accelerator}" if placement.accelerator else "")
             + f"; planner: {placement.scheduling}, sharding {placement.sharding}", *placement.notes,
             *pod_path_warnings(spec, target)]
    for note in notes:
        typer.echo(f"# {note}", err=True)
    if apply:
        typer.echo(Kubectl().apply(text, dry_run=dry_run), err=True, nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(k8s_app, name="k8s", rich_help_panel=_panels.SCALE_OUT)
