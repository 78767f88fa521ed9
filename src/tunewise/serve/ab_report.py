"""`tunewise ab report NAME`: per variant, requests, latency, tokens and feedback, and which one wins.

The feedback mean carries a 95% confidence interval (normal approximation, mean +- 1.96 standard
errors). A variant wins when its mean is the highest and a two-sided Welch z-test against the
runner-up gives |z| >= 1.96; otherwise the report says there is no winner yet.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

Z95 = 1.96


@dataclass
class VariantStats:
    variant: str
    registered_name: str | None
    version: str | None
    shadow: bool
    requests: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    completion_tokens: int
    feedback_count: int
    feedback_mean: float | None
    feedback_ci95: tuple[float, float] | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean_ci(scores: list[float]) -> tuple[float | None, tuple[float, float] | None, float]:
    if not scores:
        return None, None, 0.0
    mean = statistics.fmean(scores)
    if len(scores) < 2:
        return mean, None, 0.0
    se = statistics.stdev(scores) / math.sqrt(len(scores))
    return mean, (mean - Z95 * se, mean + Z95 * se), se


def variant_stats(rows: list[dict[str, Any]]) -> list[VariantStats]:
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["variant"] or row["model"], row["shadow_of"] is not None), []).append(row)
    out = []
    for (variant, shadow), members in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        scores = [s for r in members for s in r["scores"]]
        mean, ci, _ = _mean_ci(scores)
        latencies = [r["latency_s"] for r in members]
        out.append(VariantStats(variant, members[0]["registered_name"], members[0]["version"], shadow, len(members),
                                _percentile(latencies, 0.5), _percentile(latencies, 0.95),
                                sum(r["completion_tokens"] for r in members), len(scores), mean, ci))
    return out


def pick_winner(rows: list[dict[str, Any]], stats: list[VariantStats]) -> tuple[str | None, str]:
    """(winning variant or None, the reason in one sentence)."""
    served = [s for s in stats if not s.shadow and s.feedback_count > 0]
    if len(served) < 2:
        return None, "feedback on at least two variants is needed to compare them"
    scores = {s.variant: [x for r in rows if (r["variant"] or r["model"]) == s.variant and r["shadow_of"] is None
                          for x in r["scores"]] for s in served}
    ranked = sorted(served, key=lambda s: s.feedback_mean, reverse=True)
    best, second = ranked[0], ranked[1]
    _, _, se_best = _mean_ci(scores[best.variant])
    _, _, se_second = _mean_ci(scores[second.variant])
    spread = math.sqrt(se_best**2 + se_second**2)
    if spread == 0:
        if best.feedback_mean > second.feedback_mean and min(best.feedback_count, second.feedback_count) >= 2:
            return best.variant, f"{best.variant} scores higher on every rating"
        return None, "not enough feedback to separate the variants"
    z = (best.feedback_mean - second.feedback_mean) / spread
    if z >= Z95:
        return best.variant, (f"{best.variant} beats {second.variant}: mean feedback {best.feedback_mean:.3f} vs "
                              f"{second.feedback_mean:.3f} (z = {z:.2f}, 95% level)")
    return None, (f"no significant difference yet between {best.variant} and {second.variant} "
                  f"(z = {z:.2f}; 1.96 needed); collect more feedback")


def route_report(store: Any, route: str) -> dict[str, Any]:
    rows = store.route_answers(route)
    stats = variant_stats(rows)
    winner, reason = pick_winner(rows, stats)
    return {"route": route, "answers": len(rows), "variants": [s.to_json() for s in stats], "winner": winner,
            "reason": reason}


def promotion_target(result: dict[str, Any], variant: str | None = None) -> tuple[str, str]:
    """(registered name, version) to promote: `variant`, else the report's winner; TunewiseError if none."""
    from tunewise.errors import TunewiseError

    name = result["route"]
    chosen = variant or result["winner"]
    if chosen is None:
        raise TunewiseError(f"{name}: {result['reason']}", hint="or name the variant to promote")
    stats = next((v for v in result["variants"] if v["variant"] == chosen and not v["shadow"]), None)
    if stats is None or not stats["registered_name"]:
        raise TunewiseError(f"{name}: variant {chosen!r} has no answers recorded from a registered version",
                            hint="variants: " + ", ".join(v["variant"] for v in result["variants"]))
    return stats["registered_name"], stats["version"]
