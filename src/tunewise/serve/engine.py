"""The serving engine: names in, answers out; usable from Python, mounted by `tunewise serve` and by
the control plane. It never imports the HTTP layer.

    engine = Engine(load_serve_config(models=["smollm2-135m-instruct"]))
    gen = engine.start(engine.select("support-bot", user="u1"), messages=[{"role": "user", "content": "hi"}],
                       params=SamplingParams(max_tokens=32, temperature=0))
    print(gen.wait().choices[0].text)
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

from tunewise.serve.ab import Route, Router
from tunewise.serve.batching import Request
from tunewise.serve.config import MIB, ServeConfig
from tunewise.serve.errors import InvalidRequest, ModelRefused, PromptTooLong
from tunewise.serve.feedback import ServingStore, user_hash
from tunewise.serve.generation import Generation, Selection
from tunewise.serve.metrics import EngineMetrics
from tunewise.serve.names import ModelNames, ResolvedModel
from tunewise.serve.sampling import SamplingParams

log = logging.getLogger("tunewise.serve")


def base_models(specs: list[str]) -> dict[str, Path]:
    """`--model` values (bundled name, directory, or name=directory) as {served name: directory}."""
    from tunewise.models.resolve import resolve_base_model

    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep:
            name, target = (Path(spec).name if ("/" in spec or Path(spec).is_dir()) else spec), spec
        out[name] = resolve_base_model(target)
    return out


class Engine:
    def __init__(self, config: ServeConfig, *, store: ServingStore | None = None, backend: Any = None):
        self.config = config
        self.metrics = EngineMetrics()
        self.names = ModelNames(base_models(config.models), registry=config.registry, runs=config.runs,
                                ttl_s=config.resolve_ttl_s)
        self.router = Router()
        for route in config.parsed_routes():
            self.router.set_route(route)
        self.store = store or ServingStore(config.database_url)
        self.backend = backend or _make_backend(config, self.metrics)
        self._tokenizers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._records: queue.Queue = queue.Queue()
        self._recorder = threading.Thread(target=self._record_loop, name="tunewise-answer-recorder", daemon=True)
        self._recorder.start()
        self._base_labels = {str(path): name for name, path in self.names.bases.items()}
        for name in config.merge:
            model = self.names.resolve(name)
            self.backend.load_merged(model, self.base_label(model))
        for name in list(config.pin) + list(config.prefetch):
            self.prefetch(name, pin=name in config.pin)

    # --- names ----------------------------------------------------------------------------------

    def add_resolver(self, fn: Any) -> None:
        """See ModelNames.add_resolver: the control plane resolves its `ft:` ids this way."""
        self.names.add_resolver(fn)

    def set_route(self, route: Route) -> None:
        self.router.set_route(route)

    def select(self, requested: str, user: str | None = None) -> Selection:
        """Resolve a request's `model` (an A/B route picks its variant first); UnknownModel if nothing."""
        choice = self.router.choose(requested, user)
        if choice is None:
            return Selection(requested, self.names.resolve(requested))
        shadow = self.names.resolve(choice.shadow) if choice.shadow else None
        return Selection(requested, self.names.resolve(choice.variant.model), route=choice.route.name,
                         variant=choice.variant.label, shadow=shadow)

    def base_label(self, model: ResolvedModel) -> str:
        return self._base_labels.get(str(model.base_dir), model.base_dir.name)

    def tokenizer(self, model: ResolvedModel) -> Any:
        """The artifact's own tokenizer and chat template when it saved one, else its base's."""
        from tunewise.models.load import load_tokenizer

        folder = model.adapter_dir if model.adapter_dir and (model.adapter_dir / "tokenizer_config.json").is_file() \
            else model.base_dir
        with self._lock:
            if str(folder) not in self._tokenizers:
                self._tokenizers[str(folder)] = load_tokenizer(folder)
            return self._tokenizers[str(folder)]

    # --- requests -------------------------------------------------------------------------------

    def chat_prompt(self, model: ResolvedModel, messages: list[dict[str, Any]]) -> list[int]:
        tokenizer = self.tokenizer(model)
        if not getattr(tokenizer, "chat_template", None):
            raise InvalidRequest(f"{model.id} has no chat template; use /v1/completions", param="messages")
        try:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        except Exception as err:  # a template that raises on these messages (e.g. roles out of order)
            raise InvalidRequest(f"messages: the chat template refused them ({err})", param="messages") from None
        return list(ids)

    def text_prompt(self, model: ResolvedModel, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            return list(prompt)
        return list(self.tokenizer(model)(prompt)["input_ids"])

    def start(self, selection: Selection, prompt_ids: list[int], params: SamplingParams, *,
              loop: asyncio.AbstractEventLoop | None = None, user: str | None = None,
              kind: str = "chatcmpl") -> Generation:
        """Submit a request; returns its Generation at once (tokens arrive as the batch runs)."""
        model = selection.model
        loaded = self.backend.loaded_for(model, self.base_label(model))
        params = self._fit_length(model, loaded.max_length, prompt_ids, params)
        gen_id = f"{kind}-{uuid.uuid4().hex}"
        generation = Generation(gen_id, selection, len(prompt_ids), params.n, loop=loop,
                                on_done=lambda g: self._records.put((g, user, None)))
        generation.request = self._request(gen_id, model, prompt_ids, params, generation, selection.variant)
        self.backend.submit(loaded, generation.request)
        if selection.shadow is not None:
            self._start_shadow(selection, prompt_ids, params, generation, user)
        self.backend.publish_queue_metrics()
        return generation

    def _request(self, gen_id: str, model: ResolvedModel, prompt_ids: list[int], params: SamplingParams,
                 generation: Generation, variant: str | None) -> Request:
        tokenizer = self.tokenizer(model)
        lltokenizer = None
        if params.json_schema is not None:
            from tunewise.serve.text import lltokenizer_for

            loaded = self.backend.loaded_for(model, self.base_label(model))
            lltokenizer = lltokenizer_for(tokenizer, loaded.runner.vocab_size)
        labels = self.metrics.labels_for(self.base_label(model), model.id if model.is_adapter else "",
                                         model.version or "", variant or "")
        return Request(gen_id, model, prompt_ids, params, tokenizer, generation.emit, self._eos_ids(model, tokenizer),
                       lltokenizer=lltokenizer, observer=self.metrics, labels=labels)

    def _start_shadow(self, selection: Selection, prompt_ids: list[int], params: SamplingParams,
                      primary: Generation, user: str | None) -> None:
        shadow_sel = Selection(selection.requested, selection.shadow, route=selection.route,
                               variant=selection.shadow.id)
        try:
            loaded = self.backend.loaded_for(shadow_sel.model, self.base_label(shadow_sel.model))
            gen = Generation(f"shadow-{uuid.uuid4().hex}", shadow_sel, len(prompt_ids), params.n,
                             on_done=lambda g: self._records.put((g, user, primary)))
            gen.request = self._request(gen.id, shadow_sel.model, prompt_ids, params, gen, shadow_sel.variant)
            self.backend.submit(loaded, gen.request)
        except Exception:  # a shadow must never fail the answer the user waits for
            log.exception("shadow request to %s not started", selection.shadow.id)

    def _fit_length(self, model: ResolvedModel, model_max: int, prompt_ids: list[int],
                    params: SamplingParams) -> SamplingParams:
        limit = min(model_max, self.config.max_model_len or model_max)
        if not prompt_ids:
            raise InvalidRequest("the prompt is empty", param="messages")
        room = limit - len(prompt_ids)
        if params.max_tokens is None or params.max_tokens <= 0:
            if room < 1:
                raise PromptTooLong(f"This model's maximum context length is {limit} tokens. However, your messages "
                                    f"resulted in {len(prompt_ids)} tokens. Please reduce the length of the messages.",
                                    param="messages")
            from dataclasses import replace

            return replace(params, max_tokens=min(room, self.config.default_max_tokens))
        if len(prompt_ids) + params.max_tokens > limit:
            raise PromptTooLong(f"This model's maximum context length is {limit} tokens. However, you requested "
                                f"{len(prompt_ids) + params.max_tokens} tokens ({len(prompt_ids)} in the messages, "
                                f"{params.max_tokens} in the completion). Please reduce the length of the messages "
                                "or completion.", param="messages")
        return params

    def _eos_ids(self, model: ResolvedModel, tokenizer: Any) -> frozenset[int]:
        import json

        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        config = model.base_dir / "generation_config.json"
        if config.is_file():
            eos = json.loads(config.read_text()).get("eos_token_id")
            ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return frozenset(ids)

    # --- records --------------------------------------------------------------------------------

    def _record_loop(self) -> None:
        while True:
            item = self._records.get()
            if item is None:
                return
            generation, user, shadow_of = item
            try:
                self._record(generation, user, shadow_of)
            except Exception:  # a full disk must not stop serving
                log.exception("recording answer %s failed", generation.id)

    def _record(self, generation: Generation, user: str | None, shadow_of: Generation | None) -> None:
        if generation.error is not None:
            return
        sel = generation.selection
        shadowed = shadow_of is not None or sel.shadow is not None
        end = generation.finished_at or generation.started
        self.store.record_answer({
            "id": generation.id, "requested": sel.requested, "route": sel.route, "variant": sel.variant,
            "model": sel.model.id, "registered_name": sel.model.registered_name, "version": sel.model.version,
            "user_hash": user_hash(user), "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "ttft_s": None if generation.first_token_at is None else generation.first_token_at - generation.started,
            "latency_s": end - generation.started, "finish_reason": generation.choices[0].finish_reason,
            "shadow_of": shadow_of.id if shadow_of is not None else None,
            "text": generation.choices[0].text if shadowed else None,
        })

    def flush_records(self, timeout: float = 10.0) -> None:
        """Wait until every finished answer is in the store (tests and `ab report` right after load)."""
        import time

        deadline = time.monotonic() + timeout
        while not self._records.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)

    # --- models ---------------------------------------------------------------------------------

    def prefetch(self, name: str, *, pin: bool = False) -> Any:
        """Load an adapter ahead of its first request (pin: never evict it); returns a Future."""
        model = self.names.resolve(name)
        return self.backend.prefetch(model, self.base_label(model), pin=pin)

    def list_models(self) -> list[dict[str, Any]]:
        from tunewise.serve.listing import list_models

        return list_models(self)

    def close(self) -> None:
        self._records.put(None)
        self.backend.close()


def _make_backend(config: ServeConfig, metrics: EngineMetrics) -> Any:
    if config.backend == "vllm":
        from tunewise.serve.backends.vllm import VllmBackend

        return VllmBackend(config, metrics)
    from tunewise.serve.backends.transformers import BackendOptions, TransformersBackend

    options = BackendOptions(device=config.device, precision=config.precision,
                             adapter_model_bytes=config.adapter_cache.model_mib * MIB,
                             adapter_host_bytes=config.adapter_cache.host_mib * MIB,
                             max_running=config.max_running, step_tokens=config.step_tokens,
                             kv_cache_bytes=config.kv_cache_mib * MIB)
    return TransformersBackend(options, metrics)


__all__ = ["Engine", "ModelRefused", "base_models"]
