"""Architecture name -> module; the one list the config, the GD loop and the docs read.

Adding an architecture: one module with ``NAME``, ``fusion_layer(depth,
requested)`` and ``network(dims, width, depth, requested)``, and one entry
below (docs/architectures.md).
"""

from __future__ import annotations

from types import ModuleType

from . import deep_fusion, early_fusion, late_fusion

__all__ = ["ARCHITECTURE_MODULES", "architecture", "network"]

ARCHITECTURE_MODULES: dict[str, ModuleType] = {
    mod.NAME: mod for mod in (late_fusion, early_fusion, deep_fusion)
}


def architecture(name: str) -> ModuleType:
    """The module of architecture ``name`` (a ValueError names the valid ones)."""
    try:
        return ARCHITECTURE_MODULES[name]
    except KeyError:
        raise ValueError(f"model.architecture must be one of {', '.join(ARCHITECTURE_MODULES)}; "
                         f"got {name!r}") from None


def network(model, dims):
    """The layer table of a [model] table's architecture for inputs of these dims."""
    mod = architecture(model.architecture)
    return mod.network(dims, model.width, model.depth, model.fusion_layer)
