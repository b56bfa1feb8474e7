"""Early fusion: one first layer on the concatenated inputs."""

from .chain import chain

NAME = "early_fusion"


def fusion_layer(depth: int, requested: int) -> int:
    """Early fusion fuses at the first layer."""
    return 1


def network(dims, width: int, depth: int, requested: int = 0):
    """The layer table (two layers: the shared first layer, then the head)."""
    return chain(dims, width, depth, fusion_layer(depth, requested))
