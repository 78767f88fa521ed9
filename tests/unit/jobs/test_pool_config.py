"""The scheduling section of the server config: what it builds, and errors that name the field."""

from __future__ import annotations

import pytest

from tunewise.jobs.pool_config import SchedulingConfig, SchedulingConfigError, load_scheduling_config

CLUSTER = {
    "pools": [
        {"name": "gpu", "nodes": [
            {"name": "node", "count": 2, "gpus": [{"type": "H100-80GB", "count": 6},
                                                  {"type": "h100-80gb", "count": 2, "mig": ["3g.40gb", "4g.40gb"]}]},
        ]},
        {"name": "cpu", "nodes": [{"name": "local", "cpu_slots": 2}]},
    ],
    "priority_classes": {"low": 0, "normal": 100, "urgent": 5000},
    "quotas": [{"team": "research", "gpus": 8}, {"team": "product", "gpu_memory_gib": 320, "can_lend": False}],
    "aging_hours": 2,
}


def _error(raw) -> str:
    with pytest.raises(SchedulingConfigError) as err:
        load_scheduling_config(raw)
    return str(err.value)


def test_builds_pools_quotas_and_policy():
    setup = load_scheduling_config(CLUSTER)
    gpu = setup.pool("gpu")
    assert [n.name for n in gpu.nodes] == ["node-1", "node-2"]
    cards = gpu.nodes[1].gpus
    assert [c.index for c in cards] == list(range(8)) and all(c.type == "h100-80gb" for c in cards)
    assert cards[0].memory_gib == 79.1 and cards[0].mig_slices == ()
    slices = cards[7].mig_slices
    assert [(s.name, s.profile, s.memory_gib) for s in slices] == [("gpu7/mig0", "3g.40gb", 39.4),
                                                                    ("gpu7/mig1", "4g.40gb", 39.4)]
    assert slices[1].compute_fraction == pytest.approx(0.571)
    assert setup.pool("cpu").nodes[0].cpu_slots == 2
    assert [(q.team, q.gpus, q.gpu_memory_gib, q.can_lend) for q in setup.quotas] == [
        ("research", 8, None, True), ("product", None, 320, False)]
    assert setup.policy.aging_seconds == 7200 and setup.policy.priority_classes == (0, 100, 5000)
    assert setup.priority("urgent") == 5000 and setup.priority(None) == 100


def test_every_field_has_a_default():
    setup = SchedulingConfig().build()
    assert [(p.name, [n.name for n in p.nodes], p.nodes[0].cpu_slots) for p in setup.pools] == [("default", ["local"], 1)]
    assert setup.quotas == () and setup.policy.backfill and setup.policy.preemption
    assert load_scheduling_config(None).pools == setup.pools


def test_errors_name_each_field():
    message = _error({"pools": [{"name": "gpu", "nodes": [{"name": "n", "gpus": [{"type": "h100", "count": 0}]}]}],
                      "quotas": [{"team": "x"}], "aging_hours": -1, "extra": True})
    assert "scheduling.pools[0].nodes[0].gpus[0].type: unknown GPU type 'h100' (known: a100-40gb" in message
    assert "scheduling.pools[0].nodes[0].gpus[0].count: Input should be greater than or equal to 1" in message
    assert "scheduling.quotas[0]: a quota needs gpus or gpu_memory_gib" in message
    assert "scheduling.aging_hours: Input should be greater than 0" in message
    assert "scheduling.extra: Extra inputs are not permitted" in message


@pytest.mark.parametrize("raw, expected", [
    ({"pools": [{"name": "g", "nodes": [{"name": "n", "gpus": [{"type": "h100-80gb", "mig": ["4g.40gb", "4g.40gb"]}]}]}]},
     "gpus[0]: mig: 4g.40gb + 4g.40gb takes 114% of a card's compute"),
    ({"pools": [{"name": "g", "nodes": [{"name": "n", "gpus": [{"type": "t4", "mig": ["1g.5gb"]}]}]}]},
     "mig: unknown profile '1g.5gb' for t4 (known: none: this type has no MIG)"),
    ({"pools": [{"name": "g", "nodes": [{"name": "n", "count": 2, "cpu_slots": 1}, {"name": "n-1", "cpu_slots": 1}]}]},
     "scheduling.pools[0]: node 'n-1' is declared twice"),
    ({"pools": [{"name": "g", "nodes": [{"name": "n"}]}]}, "scheduling.pools[0].nodes[0]: a node needs gpus or cpu_slots"),
    ({"pools": [{"name": "../x", "nodes": [{"name": "n", "cpu_slots": 1}]}]}, "'../x' is not a pool name"),
    ({"priority_classes": {"low": 0}, "default_priority_class": "normal"},
     "default_priority_class: 'normal' is not one of the priority_classes (low)"),
    ({"quotas": [{"team": "a", "gpus": 1}, {"team": "a", "gpus": 2}]}, "quota team 'a' is declared twice"),
    ([1, 2], "scheduling: expected a mapping"),
])
def test_bad_sections_are_refused_with_the_reason(raw, expected):
    assert expected in _error(raw)


def test_unknown_class_and_pool_names_are_clear_errors():
    setup = load_scheduling_config(CLUSTER)
    with pytest.raises(SchedulingConfigError, match="unknown class 'top' \\(known: low, normal, urgent\\)"):
        setup.priority("top")
    with pytest.raises(SchedulingConfigError, match="unknown pool 'tpu' \\(known: gpu, cpu\\)"):
        setup.pool("tpu")


def test_the_catalogue_under_the_workspace_is_used(workspace, tmp_path):
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "hardware.yaml").write_text("gpus:\n  lab-card:\n    memory_gib: 40\n    peak_tflops: 100\n")
    setup = load_scheduling_config({"pools": [{"name": "lab", "nodes": [{"name": "n", "gpus": [{"type": "lab-card"}]}]}]})
    assert setup.pools[0].nodes[0].gpus[0].memory_gib == 40
