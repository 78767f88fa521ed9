"""The portal's server-drawn charts and the new-job form's mapping to a job request and back."""

from __future__ import annotations

import json

from tunewise.web.charts import histogram, loss_curves, nice_ticks, thin
from tunewise.web.job_form import form_from_request, query_of, request_from_form


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 8) == [0, 2, 4, 6, 8]
    ticks = nice_ticks(10.71, 10.79)
    assert ticks[0] <= 10.71 and ticks[-1] >= 10.79 and len(set(ticks)) == len(ticks)


def test_tick_labels_tell_close_values_apart():
    svg = str(loss_curves([{"label": "j", "curves": {"train_loss": [[1, 10.78], [8, 10.73]]}}], chart_id="c"))
    assert all(f">{label}<" in svg for label in ("10.72", "10.74", "10.76", "10.78"))


def test_a_long_curve_is_thinned_keeping_its_ends():
    points = [[i, 1 / i] for i in range(1, 10_001)]
    kept = thin(points)
    assert len(kept) == 400 and kept[0] == points[0] and kept[-1] == points[-1]
    assert len(str(loss_curves([{"label": "j", "curves": {"train_loss": points}}], chart_id="c"))) < 20_000


def test_charts_describe_their_numbers_for_screen_readers():
    svg = str(histogram([0, 10, 20], [3, 5], chart_id="h", title="Lengths", x_label="tokens", marker=15,
                        marker_label="max_length 15"))
    assert 'role="img"' in svg and "0-10: 3, 10-20: 5" in svg and "max_length 15" in svg
    empty = str(loss_curves([{"label": "j", "curves": {}}], chart_id="c"))
    assert "No steps yet" in empty


def test_the_form_maps_to_a_request_and_back():
    form = {"model": "tiny", "pool": "gpu", "spec.train.epochs": "2", "spec.method.name": "lora",
            "spec.method.r": "8", "spec.data.train": "file-abc", "gate.0.key": "val_loss",
            "gate.0.threshold": "<= 2.5", "spec.train.learning_rate": " ",
            "extra": json.dumps({"data": {"format": "chat"}})}
    request = request_from_form(form)
    assert request["model"] == "tiny" and request["pool"] == "gpu"
    spec = request["spec"]
    assert spec["train"] == {"epochs": 2} and spec["method"] == {"name": "lora", "r": 8}
    assert spec["data"] == {"format": "chat", "train": "file-abc"} and spec["eval"]["gate"] == {"val_loss": "<= 2.5"}
    shown = {"spec.train.epochs", "spec.method.name", "spec.method.r", "spec.data.train"}
    back = form_from_request(request, shown)
    assert back["spec.train.epochs"] == "2" and back["gate.0.threshold"] == "<= 2.5"
    assert json.loads(back["extra"]) == {"data": {"format": "chat"}}  # fields the form does not show travel along
    assert request_from_form(back) == request
    assert "csrf_token" not in query_of({**back, "csrf_token": "x"})
