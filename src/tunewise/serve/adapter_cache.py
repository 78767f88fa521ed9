"""Adapters in three tiers, each under a byte budget: in the model, in host memory, on disk.

- **model**: tensors ready for the forward pass (on the GPU where there is one). A request can
  only run once its adapter is here.
- **host**: the adapter's weights file as bytes in RAM, or the tensors of an adapter evicted from the
  model tier; promoting it takes milliseconds (a warm load). The tiers are exclusive: an adapter is
  in one of them, so its bytes are counted (and held) once.
- **disk**: the artifact directory. Reading it (a cold load) checks every file against its
  registered sha256 first: a changed artifact is refused, whatever tier it would have gone to.

Both memory tiers evict least-recently-used entries to stay within their budget; an adapter in use
by a running request is never evicted from the model tier (the budget is exceeded only while every
resident adapter is in use), and pinned adapters never are. Loads run on one background thread so
the decode loop keeps serving the adapters already loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tunewise.serve.errors import ModelRefused
from tunewise.serve.lora_weights import HostAdapter, LoraAdapter, read_host_adapter, to_device
from tunewise.serve.names import ResolvedModel

log = logging.getLogger("tunewise.serve")


@dataclass
class _Resident:
    adapter: LoraAdapter
    users: int = 0
    pinned: bool = False
    config: dict[str, Any] | None = None


class AdapterCache:
    """The adapters of one base model. `prepare(host, name)` turns host bytes into a LoraAdapter."""

    def __init__(self, prepare: Callable[[HostAdapter, str], LoraAdapter], *, model_budget_bytes: int,
                 host_budget_bytes: int, on_ready: Callable[[], None] = lambda: None, metrics: Any = None):
        self._prepare = prepare
        self.model_budget_bytes = model_budget_bytes
        self.host_budget_bytes = host_budget_bytes
        self._on_ready = on_ready
        self._metrics = metrics
        self._model: OrderedDict[str, _Resident] = OrderedDict()
        self._host: OrderedDict[str, HostAdapter] = OrderedDict()
        self._loading: dict[str, Future] = {}
        self._failed: dict[str, ModelRefused] = {}
        self._pins: set[str] = set()
        self._lock = threading.RLock()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewise-adapter-loader")
        self.load_log: list[dict[str, Any]] = []  # {key, tier, seconds}: what the benchmark reads

    # --- what the scheduler calls -------------------------------------------------------------

    def acquire(self, model: ResolvedModel) -> LoraAdapter | None:
        """The adapter if it is in the model tier (counted as in use until `release`); otherwise
        None, and a load is started. Raises ModelRefused when its last load failed."""
        key = model.cache_key
        with self._lock:
            failed = self._failed.pop(key, None)
            if failed is not None:
                raise failed
            resident = self._model.get(key)
            if resident is not None:
                resident.users += 1
                self._model.move_to_end(key)
                self._count("hits")
                return resident.adapter
            if key not in self._loading:
                self._count("misses")
            self._start_load(model)
            return None

    def release(self, model: ResolvedModel) -> None:
        with self._lock:
            resident = self._model.get(model.cache_key)
            if resident is not None and resident.users > 0:
                resident.users -= 1

    # --- what the engine calls ----------------------------------------------------------------

    def prefetch(self, model: ResolvedModel, *, pin: bool = False) -> Future:
        """Load an adapter into the model tier ahead of its first request (optionally pinned)."""
        with self._lock:
            if pin:
                self._pins.add(model.cache_key)
                if model.cache_key in self._model:
                    self._model[model.cache_key].pinned = True
            if model.cache_key in self._model:
                done: Future = Future()
                done.set_result(None)
                return done
            return self._start_load(model)

    def set_budgets(self, *, model_bytes: int | None = None, host_bytes: int | None = None) -> None:
        """Change the byte budgets at run time; evicts at once to meet them."""
        with self._lock:
            if model_bytes is not None:
                self.model_budget_bytes = model_bytes
            if host_bytes is not None:
                self.host_budget_bytes = host_bytes
            self._evict()

    def unpin(self, model: ResolvedModel) -> None:
        with self._lock:
            self._pins.discard(model.cache_key)
            if model.cache_key in self._model:
                self._model[model.cache_key].pinned = False

    def tier(self, key: str) -> str:
        """Where an adapter is now: model, host or disk."""
        with self._lock:
            return "model" if key in self._model else "host" if key in self._host else "disk"

    def loading(self, key: str) -> bool:
        with self._lock:
            return key in self._loading

    def drop(self, key: str) -> None:
        """Forget an adapter in every memory tier (e.g. its version was retired); in-use ones stay."""
        with self._lock:
            resident = self._model.get(key)
            if resident is not None and resident.users == 0:
                del self._model[key]
            self._host.pop(key, None)
            self._publish()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "model": {"loaded": len(self._model), "bytes": self._model_bytes(),
                          "budget_bytes": self.model_budget_bytes},
                "host": {"loaded": len(self._host), "bytes": self._host_bytes(), "budget_bytes": self.host_budget_bytes},
                "loading": len(self._loading),
            }

    def contents(self) -> dict[str, Any]:
        """Which adapters (by cache key) sit in each memory tier, with their users and pins; what loads now."""
        with self._lock:
            return {"model": [{"key": k, "users": r.users, "pinned": r.pinned} for k, r in self._model.items()],
                    "host": [{"key": k} for k in self._host], "loading": sorted(self._loading)}

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)

    # --- loading and eviction -----------------------------------------------------------------

    def _start_load(self, model: ResolvedModel) -> Future:
        key = model.cache_key
        future = self._loading.get(key)
        if future is None:
            future = self._loader.submit(self._load, model)
            self._loading[key] = future
        return future

    def _load(self, model: ResolvedModel) -> None:
        key, started = model.cache_key, time.perf_counter()
        try:
            with self._lock:
                host = self._host.get(key)
            tier = "host" if host is not None else "disk"
            if host is None:
                host = self._read_from_disk(model)
            adapter = self._prepare(host, model.id)
            seconds = time.perf_counter() - started
            with self._lock:
                self._host.pop(key, None)
                self._model[key] = _Resident(adapter, pinned=key in self._pins, config=host.config)
                self._evict()
                self.load_log.append({"key": key, "from": tier, "seconds": seconds})
                if self._metrics is not None:
                    self._metrics.adapter_loaded(tier, seconds)
        except ModelRefused as err:
            with self._lock:
                self._failed[key] = err
        except Exception as err:  # a broken file must fail its requests, not the loader thread
            log.exception("loading adapter %s failed", model.id)
            with self._lock:
                self._failed[key] = ModelRefused(f"{model.id}: the adapter could not be loaded "
                                                 f"({type(err).__name__}: {err})")
        finally:
            with self._lock:
                self._loading.pop(key, None)
            self._on_ready()

    @staticmethod
    def _read_from_disk(model: ResolvedModel) -> HostAdapter:
        assert model.adapter_dir is not None
        if model.manifest:
            from tunewise.registry import verify_files

            problems = verify_files(model.adapter_dir, model.manifest)
            if problems:
                shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
                raise ModelRefused(f"{model.id} was changed after registration ({shown}); refusing to load it",
                                   hint="restore the registered files, or register the run again as a new version")
        return read_host_adapter(model.adapter_dir, model.id)

    def _model_bytes(self) -> int:
        return sum(r.adapter.nbytes for r in self._model.values())

    def _host_bytes(self) -> int:
        return sum(h.nbytes for h in self._host.values())

    def _evict(self) -> None:
        for key in list(self._model):
            if self._model_bytes() <= self.model_budget_bytes:
                break
            resident = self._model[key]
            if resident.users == 0 and not resident.pinned and len(self._model) > 1:
                del self._model[key]
                self._host[key] = HostAdapter(resident.config or {}, tensors=to_device(resident.adapter, "cpu"))
                self._count("evictions", tier="model")
        for key in list(self._host):
            if self._host_bytes() <= self.host_budget_bytes or len(self._host) <= 1:
                break
            if key not in self._pins:
                del self._host[key]
                self._count("evictions", tier="host")
        self._publish()

    def _count(self, what: str, **labels: str) -> None:
        if self._metrics is not None:
            self._metrics.adapter_event(what, **labels)

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.adapter_tiers(self.stats())
