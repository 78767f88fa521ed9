"""CPU training runs under mimalloc: `tunewise train` re-executes itself once with it preloaded.

PyTorch's CPU allocator asks for 64-byte-aligned blocks (`posix_memalign`). glibc often cannot fit
such a request into a freed block of the same size, so it grows the heap instead, and the kernel
zero-fills every fresh page on first touch: one compiled step of the bundled model faulted 100-400
thousand pages, and a kernel writing into fresh pages ran 2-3x slower than into reused ones.
mimalloc reuses aligned blocks; with purging off (MIMALLOC_PURGE_DELAY=-1) it also keeps freed pages
mapped, and the same step faulted 9 pages. The price is that the process holds on to its peak heap
until it exits (about 6% more peak RSS on the bundled model). `bench/allocator_ab.py` measures it.

An allocator can only be chosen before the process starts, hence the re-execution. It is skipped
when the job trains on CUDA, outside Linux, when mimalloc is not installed, when the command was not
started from the command line, and when TUNEWISE_ALLOCATOR=system.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

from tunewise.errors import SpecError

CHOICE_VARIABLE = "TUNEWISE_ALLOCATOR"  # auto (default) | mimalloc | system
CHOICES = ("auto", "mimalloc", "system")
# Set in the re-executed process (and inherited by its children): never re-execute twice.
REEXECUTED_VARIABLE = "TUNEWISE_ALLOCATOR_PRELOADED"


def allocator_choice(environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    choice = environ.get(CHOICE_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise SpecError(f"{CHOICE_VARIABLE}={environ[CHOICE_VARIABLE]!r} is not one of {', '.join(CHOICES)}",
                        hint=f"unset {CHOICE_VARIABLE} to let tunewise choose")
    return choice


def mimalloc_library() -> Path | None:
    """The shared library the `cmeel-mimalloc` wheel installs, or None."""
    try:
        files = importlib.metadata.distribution("cmeel-mimalloc").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name.startswith("libmimalloc.so."):
            path = Path(file.locate())
            if path.is_file():
                return path
    return None


def system_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any preload or allocator setting: a process started with it runs under glibc."""
    environ = os.environ if environ is None else environ
    dropped = ("LD_PRELOAD", REEXECUTED_VARIABLE, CHOICE_VARIABLE, "MIMALLOC_PURGE_DELAY")
    return {k: v for k, v in environ.items() if k not in dropped}


def preload_environment(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment that runs a process under mimalloc, or None when it does not apply here."""
    environ = dict(os.environ if environ is None else environ)
    choice = allocator_choice(environ)
    if choice == "system" or environ.get(REEXECUTED_VARIABLE) or not sys.platform.startswith("linux"):
        return None
    library = mimalloc_library()
    if library is None:
        if choice == "mimalloc":
            raise SpecError(f"{CHOICE_VARIABLE}=mimalloc but the cmeel-mimalloc package is not installed",
                            hint="pip install cmeel-mimalloc, or unset the variable")
        return None
    preloaded = [p for p in environ.get("LD_PRELOAD", "").split(":") if p]
    environ["LD_PRELOAD"] = ":".join([str(library), *preloaded])
    environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")  # keep freed pages mapped: no fault when reused
    environ[REEXECUTED_VARIABLE] = "1"
    return environ


def active_allocator() -> str:
    """"mimalloc" when this process runs under it, else "system"."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "mimalloc" if "libmimalloc" in maps else "system"


def _may_have_gpu() -> bool:
    """An NVIDIA or AMD GPU driver is loaded (without one, torch sees no CUDA device)."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))


def reexecute_under_mimalloc(argv: list[str] | None, device: str) -> None:
    """Replace this process by the same command under mimalloc, when training on CPU.

    argv: the command's arguments (None when the CLI was called from Python, where re-executing
    would run some other program). device: the job's train.device (auto | cpu | cuda).
    """
    if argv is None or device == "cuda" or active_allocator() == "mimalloc":
        return
    environment = preload_environment()
    if environment is None:
        return
    if device == "auto" and _may_have_gpu():
        import torch  # seconds to import: asked only where a GPU driver is present

        if torch.cuda.is_available():
            return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "tunewise", *argv], environment)
