"""A job spec from an API client, made safe to run on the server.

Every field that names something on disk is either a reference the client owns or refused:
data files are file ids of the caller's team (replaced by their stored path), a reward model is
one of the team's jobs, the base model is one the server offers. Fields that would write outside
the workspace, run code or send the server's credentials elsewhere (checkpoint.dir,
method.reward_functions, eval.judge.base_url / api_key_env) are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunewise.errors import SpecError
from tunewise.openai_api.errors import bad_request

FileResolver = Callable[[str, str], Path]  # (file id, param) -> local path; raises 404 if not the team's
RunResolver = Callable[[str, str], Path]  # (job id, param) -> its run directory; raises 404 likewise


class SpecGuard:
    def __init__(self, *, models: dict[str, str], file_path: FileResolver, run_path: RunResolver):
        self.models = models
        self.file_path = file_path
        self.run_path = run_path
        self.file_ids: list[str] = []  # every file the spec refers to, in order

    def apply(self, raw: dict[str, Any], prefix: str = "spec") -> dict[str, Any]:
        """A copy of `raw` with references resolved; APIError 400/404 naming the field otherwise."""
        if not isinstance(raw, dict):
            raise bad_request(f"{prefix}: a job spec must be an object", param=prefix)
        out = dict(raw)
        self._section(out, prefix, top=True)
        stages = out.get("stages")
        if stages is not None:
            if not isinstance(stages, list):
                raise bad_request(f"{prefix}.stages: a list of partial specs", param=f"{prefix}.stages")
            out["stages"] = [self._stage(s, f"{prefix}.stages[{i}]") for i, s in enumerate(stages)]
        return out

    def _stage(self, stage: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(stage, dict):
            raise bad_request(f"{prefix}: each stage is an object", param=prefix)
        if "name" in stage:
            raise bad_request(f"{prefix}.name: stage runs are named by the server after the job id",
                              param=f"{prefix}.name")
        out = dict(stage)
        self._section(out, prefix, top=False)
        return out

    def _section(self, spec: dict[str, Any], prefix: str, *, top: bool) -> None:
        if "base_model" in spec or top:
            spec["base_model"] = self._model(spec.get("base_model"), f"{prefix}.base_model")
        if isinstance(spec.get("data"), dict):
            spec["data"] = self._data(dict(spec["data"]), f"{prefix}.data")
        checkpoint = spec.get("checkpoint")
        if isinstance(checkpoint, dict) and checkpoint.get("dir") is not None:
            raise bad_request(f"{prefix}.checkpoint.dir: the server keeps checkpoints in the job's run directory",
                              param=f"{prefix}.checkpoint.dir")
        method = spec.get("method")
        if isinstance(method, dict):
            spec["method"] = self._method(dict(method), f"{prefix}.method")
        if isinstance(spec.get("eval"), dict):
            spec["eval"] = self._eval(dict(spec["eval"]), f"{prefix}.eval")
        if isinstance(spec.get("tracking"), dict):
            _check_report_to(spec["tracking"], f"{prefix}.tracking.report_to")

    def _model(self, name: Any, param: str) -> str:
        if name is None:
            name = next(iter(self.models))
        if not isinstance(name, str) or name not in self.models:
            raise bad_request(f"{param}: model {name!r} is not offered by this server; available: "
                              f"{', '.join(sorted(self.models))}", param=param, code="model_not_available")
        return self.models[name]

    def _file(self, value: Any, param: str) -> str:
        if not isinstance(value, str):
            raise bad_request(f"{param}: a file id (file-...) from POST /v1/files", param=param)
        path = str(self.file_path(value, param))
        if value not in self.file_ids:
            self.file_ids.append(value)
        return path

    def _data(self, data: dict[str, Any], prefix: str) -> dict[str, Any]:
        for key in ("train", "validation"):
            if data.get(key) is not None:
                data[key] = self._file(data[key], f"{prefix}.{key}")
        mix = data.get("mix")
        if isinstance(mix, dict) and mix.get("path") is not None:
            data["mix"] = {**mix, "path": self._file(mix["path"], f"{prefix}.mix.path")}
        return data

    def _method(self, method: dict[str, Any], prefix: str) -> dict[str, Any]:
        if method.get("reward_functions"):
            raise bad_request(f"{prefix}.reward_functions: scoring functions are code and do not run on the server "
                              "from a request; use method.reward_model (a reward job of your team) or, through the "
                              "OpenAI API, a string_check or text_similarity grader", param=f"{prefix}.reward_functions")
        if method.get("reward_model") is not None:
            value = method["reward_model"]
            if not isinstance(value, str):
                raise bad_request(f"{prefix}.reward_model: the id of one of your reward jobs", param=f"{prefix}.reward_model")
            method["reward_model"] = str(self.run_path(value, f"{prefix}.reward_model"))
        return method

    def _eval(self, spec: dict[str, Any], prefix: str) -> dict[str, Any]:
        judge = spec.get("judge")
        if isinstance(judge, dict):
            if judge.get("base_url") is not None or judge.get("api_key_env") is not None:
                raise bad_request(f"{prefix}.judge: judge endpoints are configured on the server, not per request; "
                                  "give judge.model, a model this server offers", param=f"{prefix}.judge.base_url")
            spec["judge"] = {**judge, "model": self._model(judge.get("model"), f"{prefix}.judge.model")}
        forgetting = spec.get("forgetting")
        if isinstance(forgetting, dict):
            forgetting = dict(forgetting)
            for key in ("text", "questions"):
                if forgetting.get(key) is not None:
                    forgetting[key] = self._file(forgetting[key], f"{prefix}.forgetting.{key}")
            spec["forgetting"] = forgetting
        if isinstance(spec.get("json_schema"), str):
            spec["json_schema"] = self._file(spec["json_schema"], f"{prefix}.json_schema")
        return spec


def _check_report_to(tracking: dict[str, Any], param: str) -> None:
    """A tracking target the server cannot import is refused now, not skipped when the job runs: the
    job's training process runs in the server's environment."""
    from tunewise.tracking import target_installed

    targets = tracking.get("report_to")
    for index, target in enumerate(targets if isinstance(targets, list) else []):
        if target in ("wandb", "tensorboard") and not target_installed(target):
            raise bad_request(f"{param}[{index}]: {target} is not installed on this server (its operator can add "
                              f"it with pip install {target})", param=f"{param}[{index}]",
                              code="integration_not_available")


def validate_spec(raw: dict[str, Any], prefix: str = "spec") -> Any:
    """The JobSpec for `raw`, or a 400 whose message and param name the first invalid field."""
    from tunewise.spec import JobSpec, problem_lines

    try:
        return JobSpec.model_validate(raw)
    except ValidationError as err:
        lines = problem_lines(err)
        first = err.errors()[0] if err.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise bad_request(f"{prefix}: " + "; ".join(lines), param=f"{prefix}.{field}" if field else prefix,
                          code="invalid_spec") from None
    except SpecError as err:
        raise bad_request(f"{prefix}: {err.message}", param=prefix, code="invalid_spec") from None


