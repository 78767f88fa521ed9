"""A failed job's error code in plain words: what happened and what to do next (shown beside the message)."""

from __future__ import annotations

from typing import Any

_WORDS = {
    "invalid_training_file": "Some rows of the training file could not be read as training examples, so no GPU "
                             "time was spent. Fix the rows named (file:line) and upload the file again.",
    "invalid_validation_file": "Some rows of the validation file could not be read. Fix the rows named "
                               "(file:line) and upload it again, or leave the validation file out to hold out "
                               "part of the training data instead.",
    "invalid_n_examples": "The training file has too few usable examples. Add examples (or fix the dropped "
                          "ones) and submit again.",
    "invalid_job": "The job's settings cannot run as given (the message names the field). Change it and "
                   "submit again.",
    "executor_error": "The server could not start the training process. This is a problem of the "
                      "installation, not of your job: tell the operator; the job can be submitted again.",
    "gate_failed": "Training finished, but the model did not meet the evaluation gate you set, so it "
                   "cannot be promoted. Look at the report, then change the data or settings, or the gate.",
    "training_error": "Training stopped on an error in the job itself (the message says which). Fix it and "
                      "submit again, or resume from a checkpoint once fixed.",
    "training_process_failed": "The training process kept crashing (killed, out of memory, or lost) and was "
                               "retried from its checkpoint each time before giving up. Resume from the last "
                               "checkpoint, or ask for a smaller batch or a larger device.",
}


def explain_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored error with `explanation` added (when its code is one we know)."""
    if not error:
        return error
    words = _WORDS.get(error.get("code") or "")
    return {**error, "explanation": words} if words else dict(error)
