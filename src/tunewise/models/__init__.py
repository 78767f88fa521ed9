"""Base models: where they come from (bundled GGUF, local directory, hub id) and how they load."""

from tunewise.models.device import DevicePolicy, resolve_device_policy
from tunewise.models.resolve import resolve_base_model

__all__ = ["DevicePolicy", "resolve_device_policy", "resolve_base_model"]
