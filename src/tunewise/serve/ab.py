"""A/B rollout: a routed name splits traffic between model versions by weight.

    --route support-bot=support-bot:3@90,support-bot:4@10
    --route support-bot=support-bot:3@100,support-bot:4@shadow      # 4 answers too, unseen

and in YAML:

    routes:
      support-bot:
        variants: [{model: support-bot:3, weight: 90}, {model: support-bot:4, weight: 10}]
        shadow: support-bot:5          # optional: answers recorded, never returned
        shadow_fraction: 0.5           # optional: of the requests (default all)

A request with a `user` always gets the same variant (a hash of route and user picks it, so the
choice survives restarts); one without is assigned at random. Routes can be replaced while the
server runs (`Router.set_route`): requests in flight finish on the variant they started with.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from tunewise.errors import SpecError


@dataclass(frozen=True)
class Variant:
    model: str  # a model name the engine resolves (support-bot:3)
    weight: float

    @property
    def label(self) -> str:
        return self.model


@dataclass(frozen=True)
class Route:
    name: str
    variants: tuple[Variant, ...]
    shadow: str | None = None
    shadow_fraction: float = 1.0

    def __post_init__(self) -> None:
        where = f"route {self.name!r}"
        if not self.variants:
            raise SpecError(f"{where}: give at least one variant")
        if any(v.weight < 0 for v in self.variants) or sum(v.weight for v in self.variants) <= 0:
            raise SpecError(f"{where}: weights must be non-negative and not all zero")
        if len({v.model for v in self.variants}) != len(self.variants):
            raise SpecError(f"{where}: a model appears twice among the variants")
        if not 0.0 <= self.shadow_fraction <= 1.0:
            raise SpecError(f"{where}: shadow_fraction must be between 0 and 1")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "variants": [{"model": v.model, "weight": v.weight} for v in self.variants],
                "shadow": self.shadow, "shadow_fraction": self.shadow_fraction}


def parse_route(text: str) -> Route:
    """`NAME=MODEL@WEIGHT,MODEL@WEIGHT[,MODEL@shadow]` as given to --route."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise SpecError(f"--route {text!r}: write NAME=MODEL@WEIGHT,MODEL@WEIGHT (e.g. bot=bot:3@90,bot:4@10)")
    variants, shadow = [], None
    for part in rest.split(","):
        model, at, weight = part.strip().rpartition("@")
        if not at or not model:
            raise SpecError(f"--route {text!r}: {part.strip()!r} needs @WEIGHT (or @shadow)")
        if weight == "shadow":
            if shadow is not None:
                raise SpecError(f"--route {text!r}: only one shadow model per route")
            shadow = model
            continue
        try:
            variants.append(Variant(model, float(weight)))
        except ValueError:
            raise SpecError(f"--route {text!r}: weight {weight!r} of {model!r} is not a number") from None
    return Route(name.strip(), tuple(variants), shadow)


def route_from_config(name: str, section: Any) -> Route:
    """One entry of the YAML `routes:` mapping."""
    if not isinstance(section, dict) or not isinstance(section.get("variants"), list):
        raise SpecError(f"routes.{name}: give `variants: [{{model: ..., weight: ...}}, ...]`")
    variants = []
    for i, item in enumerate(section["variants"]):
        if not isinstance(item, dict) or "model" not in item:
            raise SpecError(f"routes.{name}.variants[{i}]: needs `model` (and `weight`, default 1)")
        try:
            variants.append(Variant(str(item["model"]), float(item.get("weight", 1))))
        except (TypeError, ValueError):
            raise SpecError(f"routes.{name}.variants[{i}].weight: not a number") from None
    unknown = set(section) - {"variants", "shadow", "shadow_fraction"}
    if unknown:
        raise SpecError(f"routes.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    return Route(name, tuple(variants), section.get("shadow"), float(section.get("shadow_fraction", 1.0)))


def _unit(*parts: str) -> float:
    """A number in [0, 1) that depends only on the parts: the same user lands in the same place."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Choice:
    route: Route
    variant: Variant
    shadow: str | None


@dataclass
class Router:
    routes: dict[str, Route] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def set_route(self, route: Route) -> None:
        """Add or replace a route; requests already running keep the variant they were given."""
        with self._lock:
            self.routes[route.name] = route

    def remove_route(self, name: str) -> None:
        with self._lock:
            self.routes.pop(name, None)

    def choose(self, name: str, user: str | None) -> Choice | None:
        """The variant (and shadow, if any) for a request to `name`; None if `name` is not routed."""
        with self._lock:
            route = self.routes.get(name)
            point = self._random.random() if not user else _unit(name, user)
            shadow_point = self._random.random() if not user else _unit(name, user, "shadow")
        if route is None:
            return None
        total = sum(v.weight for v in route.variants)
        edge = 0.0
        chosen = route.variants[-1]
        for variant in route.variants:
            edge += variant.weight / total
            if point < edge and variant.weight > 0:
                chosen = variant
                break
        shadow = route.shadow if route.shadow and shadow_point < route.shadow_fraction else None
        return Choice(route, chosen, shadow)
