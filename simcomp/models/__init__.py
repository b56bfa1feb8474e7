"""The fusion engine's architectures: one module each, one registry (docs/architectures.md)."""

from .registry import ARCHITECTURE_MODULES, architecture, network

__all__ = ["ARCHITECTURE_MODULES", "architecture", "network"]
