"""Our one adapter to a Kubernetes cluster: the kubectl command line.

`tunewise k8s render --apply` and the Kubernetes executor both talk to the cluster through
`Kubectl`, so the user's kubeconfig, context and credentials plugins work as they do for kubectl
itself, and tunewise needs no client library. Each call has a timeout; kubectl's own message
becomes the error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from tunewise.errors import SpecError, TunewiseError

TIMEOUT_S = 120
APPLY_HINT = ("is a cluster reachable (kubectl cluster-info), with the Trainer, Kueue or Volcano CRDs installed for "
              "the kinds rendered?")


class KubectlError(TunewiseError):
    """kubectl ran and refused (or could not reach the cluster); the message is kubectl's."""


@dataclass(frozen=True)
class Kubectl:
    binary: str = "kubectl"  # a name on PATH or a path
    context: str | None = None  # kubeconfig context; None: the current one
    namespace: str | None = None  # None: the objects' own (or the context's)

    def path(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise SpecError(f"kubectl is not on PATH (looked for {self.binary!r})",
                            hint="install kubectl, or name it (--kubectl, or the executor's kubectl option)")
        return found

    def run(self, *args: str, stdin: str | None = None, what: str | None = None) -> str:
        """kubectl's stdout for `args`; KubectlError with its last lines of stderr when it fails."""
        command = [self.path(), *(["--context", self.context] if self.context else []),
                   *(["--namespace", self.namespace] if self.namespace else []), *args]
        what = what or f"kubectl {args[0]}"
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise KubectlError(f"{what} did not answer within {TIMEOUT_S} s",
                               hint="check the cluster and your kubeconfig") from None
        if done.returncode != 0:
            # client-go's discovery warnings (memcache.go) are noise around the one line that matters
            lines = [line for line in done.stderr.splitlines() if line.strip() and "memcache.go" not in line]
            error = KubectlError(f"{what} failed: {' / '.join(lines[-3:]) or f'exit code {done.returncode}'}")
            error.not_found = "NotFound" in done.stderr or "not found" in done.stderr
            raise error
        return done.stdout

    def apply(self, manifests: str, *, dry_run: str = "none") -> str:
        """`kubectl apply -f -` with the manifests (YAML or JSON) on stdin; kubectl's output."""
        args = ["apply", "-f", "-", *([f"--dry-run={dry_run}"] if dry_run != "none" else [])]
        try:
            return self.run(*args, stdin=manifests, what="kubectl apply")
        except KubectlError as err:
            err.hint = err.hint or APPLY_HINT
            raise

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object as JSON, or None when the cluster has no such object."""
        try:
            return json.loads(self.run("get", kind, name, "-o", "json", what=f"kubectl get {kind}/{name}"))
        except KubectlError as err:
            if getattr(err, "not_found", False):
                return None
            raise

    def delete(self, kind: str, name: str, *flags: str, wait: bool = False) -> None:
        """Delete the object (already gone is fine); with `wait`, return once it is gone."""
        self.run("delete", kind, name, "--ignore-not-found", f"--wait={str(wait).lower()}", *flags,
                 what=f"kubectl delete {kind}/{name}")

    def logs(self, selector: str) -> str:
        """Every container's log of the pods matching `selector`, each line prefixed with its pod."""
        return self.run("logs", "-l", selector, "--all-containers", "--prefix", "--tail=-1", "--ignore-errors",
                        what="kubectl logs")
