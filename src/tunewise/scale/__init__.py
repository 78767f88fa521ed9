"""Beyond one process: the `resources` section, the torchrun launcher and its workers, Ray Train, DeepSpeed
configs, and Kubernetes manifests. See docs/scale-out.md."""
