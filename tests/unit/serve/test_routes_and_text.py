"""A/B route parsing and assignment, serve config errors, stop strings and streaming text, names."""

from __future__ import annotations

from collections import Counter

import pytest

from tunewise.errors import SpecError
from tunewise.serve.ab import Route, Router, Variant, parse_route, route_from_config
from tunewise.serve.config import load_serve_config
from tunewise.serve.text import TextTracker


def test_route_syntax_and_config_agree():
    route = parse_route("support-bot=support-bot:3@90,support-bot:4@10,support-bot:5@shadow")
    assert route.variants == (Variant("support-bot:3", 90.0), Variant("support-bot:4", 10.0))
    assert route.shadow == "support-bot:5"
    same = route_from_config("support-bot", {"variants": [{"model": "support-bot:3", "weight": 90},
                                                         {"model": "support-bot:4", "weight": 10}],
                                             "shadow": "support-bot:5"})
    assert same == route


@pytest.mark.parametrize("text, message", [
    ("bot", "write NAME=MODEL@WEIGHT"),
    ("bot=bot:3", "needs @WEIGHT"),
    ("bot=bot:3@ninety", "is not a number"),
    ("bot=bot:3@0,bot:4@0", "not all zero"),
    ("bot=bot:3@50,bot:3@50", "appears twice"),
])
def test_bad_routes_are_refused_naming_the_problem(text, message):
    with pytest.raises(SpecError, match=message):
        parse_route(text)


def test_assignment_follows_weights_and_sticks_to_users():
    router = Router()
    router.set_route(Route("bot", (Variant("bot:3", 90), Variant("bot:4", 10))))
    counts = Counter(router.choose("bot", f"user-{i}").variant.model for i in range(4000))
    assert abs(counts["bot:3"] / 4000 - 0.9) < 0.02
    assert len({router.choose("bot", "alice").variant.model for _ in range(20)}) == 1
    assert router.choose("other", "alice") is None


def test_serve_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "serve.yaml"
    bad.write_text("models: [x]\nmax_running: 0\n")
    with pytest.raises(SpecError, match="max_running"):
        load_serve_config(bad)
    bad.write_text("models: [x]\nroutes:\n  bot: {variants: [{weight: 1}]}\n")
    with pytest.raises(SpecError, match=r"routes.bot.variants\[0\]"):
        load_serve_config(bad)
    bad.write_text("models: [x\n")
    with pytest.raises(SpecError, match="serve.yaml:"):
        load_serve_config(bad)
    merged = load_serve_config(None, models=["a"], route=["bot=bot:1@1"], backend="vllm", registry=False)
    assert merged.backend == "vllm" and not merged.registry and merged.parsed_routes()[0].name == "bot"


class _CharTokenizer:
    """One character per token: enough to test what is sent and what is held back."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_stop_strings_are_never_sent_even_in_part():
    tracker = TextTracker(_CharTokenizer(), ("END",))
    sent = "".join(tracker.add(ord(c)) for c in "abcEN")
    assert sent == "abc"  # "EN" may still become END: held back
    assert tracker.add(ord("D")) == "" and tracker.stopped and tracker.text == "abc"
    loose = TextTracker(_CharTokenizer(), ("END",))
    streamed = "".join(loose.add(ord(c)) for c in "xEN") + loose.flush()
    assert streamed == "xEN" and not loose.stopped
