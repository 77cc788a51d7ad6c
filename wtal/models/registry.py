"""A name → builder registry for the localizers (a dict, a decorator and a getter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from wtal.models.base import Localizer

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``name``; a second builder with the same name is an error."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"An entry is already registered under the name {name!r}.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_BUILDERS)


def builder_parameters(name: str) -> set[str]:
    """Keyword parameters of the builder of ``name``."""
    import inspect

    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return set(inspect.signature(_BUILDERS[name]).parameters)


def build_model(name: str, **kwargs: Any) -> Localizer:
    """Build the model registered as ``name`` with keyword arguments.

    Raises:
        TypeError: the builder made something that is not a :class:`Localizer`.
    """
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    net = _BUILDERS[name](**kwargs)
    if not isinstance(net, Localizer):
        raise TypeError(f"model {name!r}: its builder made a {type(net).__name__}, not a "
                        f"wtal.models.base.Localizer (see the README, 'How a model plugs in')")
    return net
