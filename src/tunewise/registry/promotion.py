"""Promotion policy: aliases staging / production move between versions, each move recorded.

A version whose gate failed is never promoted, nor one whose files no longer match their registered
sha256; production also needs a gate that ran with at least one criterion and passed.
"""

from __future__ import annotations

from typing import Any

from tunewise.registry.errors import PromotionError
from tunewise.registry.events import read_history, record_event
from tunewise.registry.versions import ALIASES, VersionInfo, fetch_version, get_version, registered_model

PRODUCTION = "production"


def _check_policy(info: VersionInfo, alias: str) -> None:
    if info.gate == "failed":
        raise PromotionError(
            f"{info.name} version {info.version} failed its evaluation gate ({info.tags.get('tunewise.gate_summary', '')}); "
            "a failed run cannot be promoted",
            hint="fix the run and register the new one",
        )
    if alias == PRODUCTION and (info.gate != "passed" or info.tags.get("tunewise.gate_criteria", "0") == "0"):
        raise PromotionError(
            f"{info.name} version {info.version} has no passed evaluation gate "
            f"({info.tags.get('tunewise.gate_summary', 'not evaluated')}); production needs one",
            hint="add criteria under eval.gate in the spec, run `tunewise eval RUN`, then register the run again",
        )


def _current(client: Any, name: str, alias: str) -> str | None:
    aliases = registered_model(client, name).aliases or {}
    value = aliases.get(alias)
    return None if value is None else str(value)


def _move_alias(client: Any, info: VersionInfo, alias: str, action: str) -> dict[str, Any]:
    fetch_version(info.name, info.version, client)  # raises IntegrityError on a changed artifact
    previous = _current(client, info.name, alias)
    client.set_registered_model_alias(info.name, alias, info.version)
    event = record_event(client, info.name, {"action": action, "alias": alias, "from": previous, "to": info.version})
    client.set_model_version_tag(info.name, info.version, f"tunewise.{alias}_since", f"{event['when']} by {event['who']}")
    if alias == PRODUCTION:
        client.set_model_version_tag(info.name, info.version, "tunewise.immutable", "true")
    return event


def promote(name: str, version: str | int, to: str, client: Any = None) -> dict[str, Any]:
    """Point alias `to` (staging | production) at `version`; returns the recorded event."""
    from tunewise.tracking import mlflow_client

    if to not in ALIASES:
        raise PromotionError(f"--to {to!r}: promote to one of {', '.join(ALIASES)}")
    client = client or mlflow_client()
    info = get_version(name, version, client)
    _check_policy(info, to)
    if _current(client, name, to) == info.version:
        raise PromotionError(f"{name} version {info.version} is already {to}")
    return _move_alias(client, info, to, "promote")


def production_chain(events: list[dict[str, Any]]) -> list[str]:
    """The versions production has pointed at, oldest first, with rolled-back ones removed."""
    chain: list[str] = []
    for event in events:
        if event.get("alias") != PRODUCTION:
            continue
        if event.get("action") == "rollback":
            if chain and chain[-1] == event.get("from"):
                chain.pop()
            if not chain or chain[-1] != event.get("to"):
                chain.append(str(event["to"]))
        elif event.get("action") == "promote" and (not chain or chain[-1] != event.get("to")):
            chain.append(str(event["to"]))
    return chain


def rollback(name: str, client: Any = None) -> dict[str, Any]:
    """Move production back to the version that held it before the current one; returns the event."""
    from tunewise.tracking import mlflow_client

    client = client or mlflow_client()
    current = _current(client, name, PRODUCTION)
    if current is None:
        raise PromotionError(f"{name} has no production version to roll back")
    chain = production_chain(read_history(client, name))
    if not chain or chain[-1] != current:  # alias moved outside tunewise: trust the registry
        chain.append(current)
    if len(chain) < 2:
        raise PromotionError(f"{name} has no earlier production version than {current}",
                             hint="promote another version instead: tunewise promote NAME VERSION --to production")
    target = get_version(name, chain[-2], client)
    _check_policy(target, PRODUCTION)
    return _move_alias(client, target, PRODUCTION, "rollback")


def history(name: str, client: Any = None) -> list[dict[str, Any]]:
    from tunewise.tracking import mlflow_client

    return read_history(client or mlflow_client(), name)
