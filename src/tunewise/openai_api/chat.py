"""Chat completions on the wire: the request we accept and the objects we answer with, field for
field those the official client parses (`openai.types.chat.ChatCompletion`, `ChatCompletionChunk`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunewise.openai_api.sampling import SamplingFields, ensure_unsupported_absent


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def as_template_message(self) -> dict[str, Any]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        role = "system" if self.role == "developer" else self.role  # chat templates know "system"
        return {"role": role, "content": text}


class JsonSchemaFormat(BaseModel):
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(SamplingFields):
    model_config = ConfigDict(extra="allow")
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    stream_options: StreamOptions | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, value: int | None, info: Any) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    def json_schema(self) -> dict[str, Any] | None:
        """The schema the answer must follow, or None (json_object: any JSON object)."""
        fmt = self.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return {"type": "object"}
        if fmt.json_schema is None or not fmt.json_schema.schema_:
            from tunewise.openai_api.errors import bad_request

            raise bad_request("response_format.json_schema.schema: give the JSON schema", param="response_format")
        return fmt.json_schema.schema_

    def check(self) -> None:
        ensure_unsupported_absent(self, ("tools", "functions", "audio", "prediction"))
        tool_choice = (self.model_extra or {}).get("tool_choice")
        if tool_choice not in (None, "none"):
            ensure_unsupported_absent(self, ("tool_choice",))


def token_logprob(token: str, logprob: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    return {"token": token, "bytes": list(token.encode()), "logprob": logprob,
            "top_logprobs": [{"token": t, "bytes": list(t.encode()), "logprob": lp} for t, lp in top]}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_completion(id: str, created: int, model: str, choices: list[dict[str, Any]],
                    usage_: dict[str, int]) -> dict[str, Any]:
    """`choices`: [{"text", "finish_reason", "logprobs": [token_logprob...] | None}]."""
    return {
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": c["text"]},
                     "finish_reason": c["finish_reason"],
                     "logprobs": None if c["logprobs"] is None else {"content": c["logprobs"], "refusal": None}}
                    for i, c in enumerate(choices)],
        "usage": usage_, "system_fingerprint": None,
    }


def chat_chunk(id: str, created: int, model: str, *, index: int | None = None, content: str | None = None,
               role: bool = False, finish_reason: str | None = None, logprobs: list[dict[str, Any]] | None = None,
               usage_: dict[str, int] | None = None) -> dict[str, Any]:
    """One streamed chunk: a delta for choice `index`, or (index None) the closing usage chunk."""
    choices = []
    if index is not None:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if content is not None:
            delta["content"] = content
        choices.append({"index": index, "delta": delta, "finish_reason": finish_reason,
                        "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None}})
    chunk = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices,
             "system_fingerprint": None}
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk
