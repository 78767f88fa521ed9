"""Registry errors, printed by the CLI without a traceback."""

from __future__ import annotations

from tunewise.errors import TunewiseError


class RegistryError(TunewiseError):
    """A model name or version is unknown, or a registration is refused."""


class PromotionError(RegistryError):
    """A promotion or rollback is refused by policy (gate not passed, nothing to roll back to)."""


class IntegrityError(RegistryError):
    """A registered artifact no longer matches the sha256 recorded at registration."""

    exit_code = 3
