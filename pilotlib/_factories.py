"""What a plug-in's factory takes: the copytool and container-runtime registries give ``base_env`` only to those
that have such a parameter."""

from __future__ import annotations

import inspect
from collections.abc import Callable

__all__ = ["takes_keyword"]


def takes_keyword(factory: Callable[..., object], keyword: str) -> bool:
    """Whether ``factory`` has a parameter named ``keyword`` (False for a callable without a signature)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters
