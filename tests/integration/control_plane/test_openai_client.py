"""The official `openai` client, unchanged, against a tunewise server: files, jobs, events, checkpoints.

Strict response validation is on for every call whose response type lists our values; `paused` is
not in the client's FineTuningJob.status literal (OpenAI returns it all the same), so the pause
check reads the job with the default client.
"""

from __future__ import annotations

import csv
import io
import json

import openai
import pytest

from tests.control_plane_support import wait_for
from tests.helpers import write_chat_dataset
from tests.wandb_offline import check_wandb_offline_run, wandb_installed

STEPS = 12
WANDB = {"type": "wandb", "wandb": {"project": "support", "name": "nightly", "entity": "acme", "tags": ["t1", "t2"]}}


def client(live, team="team-a", strict=True) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=live.keys[team], max_retries=0,
                         _strict_response_validation=strict)


def upload(live, tmp_path, name="train.jsonl", rows=24, team="team-a", seed=0):
    path = write_chat_dataset(tmp_path / name, rows=rows, seed=seed)
    with path.open("rb") as fh:
        return client(live, team).files.create(file=fh, purpose="fine-tune")


def test_files_upload_list_pages_and_content(live, tmp_path):
    api = client(live)
    made = [upload(live, tmp_path, f"f{i}.jsonl", rows=12 + i) for i in range(3)]
    assert all(f.status == "processed" and f.purpose == "fine-tune" and f.id.startswith("file-") for f in made)
    first = api.files.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    assert [f.id for f in first.data] == [made[2].id, made[1].id]  # newest first
    everything = [f.id for f in api.files.list(limit=2)]  # the client follows `after` cursors
    assert everything[:3] == [made[2].id, made[1].id, made[0].id]
    assert api.files.retrieve(made[0].id).filename == "f0.jsonl"
    content = api.files.content(made[0].id).read().decode()
    assert content == (tmp_path / "f0.jsonl").read_text()
    assert api.files.delete(made[0].id).deleted
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(made[0].id)


def test_bad_rows_are_kept_with_their_lines_and_fail_the_job(live, tmp_path):
    bad = tmp_path / "bad.jsonl"
    rows = [json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})] * 12
    rows[4] = '{"messages": 3}'
    bad.write_text("\n".join(rows) + "\n")
    api = client(live)
    with bad.open("rb") as fh:
        file = api.files.create(file=fh, purpose="fine-tune")
    assert file.status == "error" and "bad.jsonl:5" in file.status_details
    job = api.fine_tuning.jobs.create(model="tiny", training_file=file.id)
    job = wait_for(lambda: (j := api.fine_tuning.jobs.retrieve(job.id)).status == "failed" and j, 60,
                   what="the job to fail validation")
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "bad.jsonl:5" in job.error.message


def test_a_job_runs_end_to_end_through_a_pause(live, tmp_path, monkeypatch):
    """Create, wait in the queue, run, pause (checkpoint and stop), resume at the same step, succeed.
    With wandb installed, the job's wandb integration logs the run to W&B too (offline here)."""
    api, loose = client(live), client(live, strict=False)
    file, held_out = upload(live, tmp_path), upload(live, tmp_path, "valid.jsonl", rows=8, seed=1)
    monkeypatch.setenv("WANDB_MODE", "offline")  # the training processes inherit the server's environment
    monkeypatch.setenv("WANDB_SILENT", "true")
    job = api.fine_tuning.jobs.create(
        model="tiny", training_file=file.id, validation_file=held_out.id, suffix="support", seed=7,
        metadata={"ticket": "T-1"}, integrations=[WANDB] if wandb_installed() else openai.NOT_GIVEN,
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 4, "n_epochs": 1}}},
        extra_body={"tunewise": {"train": {"max_steps": STEPS}}})
    assert job.status == "validating_files" and job.hyperparameters.batch_size == 4
    assert job.hyperparameters.learning_rate_multiplier == "auto"

    # A second job waits behind the first (one CPU slot), says why, and is cancelled from the queue.
    waiting = api.fine_tuning.jobs.create(model="tiny", training_file=file.id)
    queued = wait_for(lambda: (j := native(live, waiting.id))["queue"]["position"] and j, 120, what="a queue place")
    assert queued["status"] == "queued" and queued["queue"]["reason"] == "capacity"
    assert "CPU slot" in queued["queue"]["detail"]
    assert api.fine_tuning.jobs.cancel(waiting.id).status == "cancelled"
    with pytest.raises(openai.ConflictError):
        api.fine_tuning.jobs.cancel(waiting.id)

    wait_for(lambda: last_step(live, job.id) >= 2, 600, 0.05, "two training steps")
    api.fine_tuning.jobs.pause(job.id)
    wait_for(lambda: loose.fine_tuning.jobs.retrieve(job.id).status == "paused", 300, what="the job to pause")
    stopped_at = native(live, job.id)["step"]
    assert 2 <= stopped_at < STEPS
    api.fine_tuning.jobs.resume(job.id)
    done = wait_for(lambda: (j := api.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed") and j,
                    600, 0.5, "the job to finish")
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny:team-a:support:{done.fine_tuned_model.rsplit(':', 1)[1]}"
    assert done.hyperparameters.learning_rate_multiplier == 1.0 and done.trained_tokens > 0
    assert done.finished_at >= done.created_at and done.organization_id == "team-a"

    events = list(reversed(list(api.fine_tuning.jobs.list_events(job.id, limit=100))))
    messages = [e.message for e in events if e.type == "message"]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert messages[1] == f"Validating training file: {file.id}"
    order = ["Files validated, moving job to queued state", "Fine-tuning job started", "Step 1/",
             f"Fine-tuning job paused at step {stopped_at}", f"Fine-tuning job resumed on local: 1 CPU slot from "
             f"step {stopped_at}", f"Step {stopped_at + 1}/", f"Step {STEPS}/{STEPS}: training loss=",
             f"New fine-tuned model created: {done.fine_tuned_model}", "The job has successfully completed"]
    positions = [next(i for i, m in enumerate(messages) if m.startswith(o)) for o in order]
    assert positions == sorted(positions)
    metrics = [e.data for e in events if e.type == "metrics"]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1)) and all(m["train_loss"] > 0 for m in metrics)
    assert all(0 <= m["train_mean_token_accuracy"] <= 1 for m in metrics)
    assert 0 <= metrics[-1]["valid_mean_token_accuracy"] <= 1
    log = (live.home / "jobs" / job.id / "train.log").read_text()
    assert f"resuming from checkpoint at step {stopped_at} of {STEPS}" in log

    checkpoints = list(api.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints[0].step_number == STEPS and len(checkpoints) <= 3
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-{STEPS}"
    final = checkpoints[0].metrics
    assert final.train_loss > 0 and final.valid_loss > 0 and final.full_valid_loss == final.valid_loss
    assert 0 <= final.train_mean_token_accuracy <= 1
    assert 0 <= final.full_valid_mean_token_accuracy == final.valid_mean_token_accuracy <= 1

    check_checkpoint_artifacts(live, job.id, [c.step_number for c in checkpoints])
    live.fine_tuned = (done.fine_tuned_model, checkpoints[-1].fine_tuned_model_checkpoint)

    results = api.files.content(done.result_files[0]).read().decode()
    table = list(csv.DictReader(io.StringIO(results)))
    assert list(table[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert [int(r["step"]) for r in table] == list(range(1, STEPS + 1))
    assert all(0 <= float(r["train_accuracy"]) <= 1 for r in table)
    validated = [r for r in table if r["valid_loss"]]  # the steps that validated: every checkpoint
    assert validated[-1]["step"] == str(STEPS) and all(0 <= float(r["valid_mean_token_accuracy"]) <= 1 for r in validated)

    if wandb_installed():
        check_wandb_offline_run(live.home / "runs" / job.id, STEPS)

    assert [j.id for j in api.fine_tuning.jobs.list(metadata={"ticket": "T-1"})] == [job.id]
    assert list(api.fine_tuning.jobs.list(metadata={"ticket": "nope"})) == []
    page = api.fine_tuning.jobs.list(limit=1)
    assert len(page.data) == 1 and page.has_more


def test_chat_with_the_fine_tuned_model_and_a_checkpoint(live):
    """The fine-tuned model and a checkpoint answer chat at once, for their team only."""
    from tunewise.server.serving import serving_available

    if not serving_available():
        pytest.skip("serving (tunewise.serve) is not installed in this build: chat with ft: models is not mounted")
    # Set by the end-to-end test above; when that job failed this test fails too, rather than skipping.
    assert getattr(live, "fine_tuned", None), "the end-to-end job did not succeed: no fine-tuned model to chat with"
    model, checkpoint = live.fine_tuned
    messages = [{"role": "user", "content": "Item 1: join alpha and beta with number 7."}]
    for name in (model, checkpoint):
        answer = client(live).chat.completions.create(model=name, messages=messages, max_tokens=4, temperature=0)
        assert answer.model == name and answer.choices[0].message.content is not None
    with pytest.raises(openai.NotFoundError):
        client(live, "team-b").chat.completions.create(model=model, messages=messages, max_tokens=2)
    listed = [m.id for m in client(live).models.list()]
    assert model in listed and model not in [m.id for m in client(live, "team-b").models.list()]


def check_checkpoint_artifacts(live, job_id: str, steps: list[int]) -> None:
    """A checkpoint becomes a servable artifact; the last one holds the final model's weights."""
    from safetensors.torch import load_file

    from tunewise.jobs.checkpoint_export import checkpoint_artifact
    from tunewise.models.artifact import read_artifact_info

    ctx = live.app.state.ctx
    with ctx.session() as session:
        from tunewise.jobs.actions import get_job

        spec = get_job(session, job_id, None).spec
    last = checkpoint_artifact(ctx.settings, job_id, spec, max(steps))
    assert read_artifact_info(last).adapter
    final = load_file(str(live.home / "runs" / job_id / "artifact" / "adapter_model.safetensors"))
    exported = load_file(str(last / "adapter_model.safetensors"))
    assert final.keys() == exported.keys() and all((final[k] == exported[k]).all() for k in final)
    assert (checkpoint_artifact(ctx.settings, job_id, spec, min(steps)) / "tokenizer.json").is_file()


def native(live, job_id, team="team-a") -> dict:
    import httpx

    return httpx.get(f"{live.url}/api/jobs/{job_id}", headers={"authorization": f"Bearer {live.keys[team]}"}).json()


def last_step(live, job_id) -> int:
    return metrics_step(live.home / "runs" / job_id)


def metrics_step(run_dir) -> int:
    """The last step the training process logged (read straight from its metrics.jsonl)."""
    path = run_dir / "metrics.jsonl"
    for line in reversed(path.read_text().splitlines() if path.exists() else []):
        try:
            return json.loads(line)["step"]
        except (ValueError, KeyError):
            continue
    return 0


def test_other_teams_cannot_see_or_touch_jobs_and_files(live, tmp_path):
    file = upload(live, tmp_path)
    other = client(live, "team-b")
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(file.id)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.create(model="tiny", training_file=file.id)
    assert file.id not in [f.id for f in other.files.list()]
    admin = client(live, "admin")
    assert file.id in [f.id for f in admin.files.list()]


def test_a_wandb_integration_without_wandb_is_refused_at_creation(live, tmp_path, monkeypatch):
    import tunewise.tracking

    monkeypatch.setattr(tunewise.tracking, "target_installed", lambda target: target != "wandb")
    with pytest.raises(openai.BadRequestError) as err:
        client(live).fine_tuning.jobs.create(model="tiny", training_file=upload(live, tmp_path).id, integrations=[WANDB])
    assert err.value.param == "integrations[0].type" and "wandb is not installed" in err.value.message


def test_errors_are_openai_shaped(live, tmp_path):
    api = client(live)
    file = upload(live, tmp_path)
    with pytest.raises(openai.BadRequestError) as err:
        api.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
    assert err.value.code == "model_not_available" and err.value.param == "model"
    with pytest.raises(openai.BadRequestError) as err:
        api.fine_tuning.jobs.create(model="tiny", training_file=file.id,
                                    extra_body={"tunewise": {"train": {"learning_rate": -1}}})
    assert err.value.param.startswith("spec.train.learning_rate")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live.url + "/v1", api_key="twk_wrong", max_retries=0).files.list()

