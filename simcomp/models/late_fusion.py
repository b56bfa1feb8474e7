"""Late fusion: each modality's own first layer, fused by the (trainable) head."""

from .chain import chain

NAME = "late_fusion"


def fusion_layer(depth: int, requested: int) -> int:
    """Late fusion fuses at the last layer."""
    return depth


def network(dims, width: int, depth: int, requested: int = 0):
    """The layer table (two layers: encoders, then the head)."""
    return chain(dims, width, depth, fusion_layer(depth, requested))
