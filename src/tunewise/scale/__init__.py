"""Beyond one process: the `resources` section, the torchrun launcher and its workers, DeepSpeed
configs, and Kubernetes manifests. See docs/scale-out.md."""
