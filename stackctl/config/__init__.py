"""The one typed config: grouped .env files validated into a StackConfig.

The names below are loaded on first use: importing a light submodule (`stackctl.config.profile`)
must not import pydantic-settings and the models (`stackctl status` never needs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackctl.config.loader import LoadedConfig, load_config
    from stackctl.config.model import GROUPS, StackConfig

__all__ = ["GROUPS", "LoadedConfig", "StackConfig", "load_config"]


def __getattr__(name: str) -> Any:
    if name in ("LoadedConfig", "load_config"):
        from stackctl.config import loader

        return getattr(loader, name)
    if name in ("GROUPS", "StackConfig"):
        from stackctl.config import model

        return getattr(model, name)
    raise AttributeError(f"module 'stackctl.config' has no attribute {name!r}")
