"""The one typed config: grouped .env files validated into a StackConfig."""

from stackctl.config.loader import LoadedConfig, load_config
from stackctl.config.model import GROUPS, StackConfig

__all__ = ["GROUPS", "LoadedConfig", "StackConfig", "load_config"]
