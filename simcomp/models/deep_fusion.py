"""Deep fusion: private encoders up to layer L_f - 1, shared layers after L_f."""

from .chain import chain

NAME = "deep_fusion"


def fusion_layer(depth: int, requested: int) -> int:
    """The configured fusion layer (1 <= L_f <= L, checked by the config)."""
    return requested


def network(dims, width: int, depth: int, requested: int = 0):
    """The layer table of a depth-L network fused at layer L_f."""
    return chain(dims, width, depth, fusion_layer(depth, requested))
