"""Compiled kernels of simcomp: forward/backward passes and the gradient-descent loops.

The package is private in spirit: the trainer (simcomp.train) decides what
to run; these functions only do the arithmetic of docs/model.md sections
2-4. Modules, in import order: ``layout`` (packed sample layout, chunks,
argument checks), ``tile`` (LLVM register tiles), ``units`` (srelu, psi,
ReLU, exp), ``rule_spec`` (what a training rule is: method codes, the
rule tuple and its builder, plain Python), ``rules`` (the compiled training
rules between the units and the backward tiles), ``gradient`` (one loss-and-gradient evaluation, serial or
parallel), ``gd`` (the gradient-descent loop), ``api`` (the public
wrappers, re-exported here). Performance notes: docs/performance.md.

Arrays: ``X`` (K, n, D) float64 or float32, modality r in
``X[r, :, :dims[r]]``; ``W`` (K, B, m, D) of X's dtype with B = 1
(symmetric) or 2 (class banks, c = +1, -1); ``kind`` 0 symmetric, 1 class
banks with srelu, 2 class banks with ReLU. Padded columns never influence a
result and are never written. Float32 data is computed in float32 except
the unit values, f, the loss and l', which are float64.
"""

from simcomp.kernels.api import (STATUS_NONFINITE, STATUS_OK, STATUS_STOP_LOSS, alignments,
                                 announce_compile,
                                 forward, gd_segment, gd_segment_batch, loss_and_grad,
                                 loss_and_grad_parallel, stack_rules)
from simcomp.kernels.layout import (BLOCK, MAX_CHUNKS, chunk_layout, fill_backward,
                                    fill_forward, pack_samples, packed_shapes, tile_width)
from simcomp.kernels.rule_spec import METHOD_NAMES, Rule, make_rule
from simcomp.kernels.units import KIND_BANKS_RELU, KIND_BANKS_SRELU, KIND_SYMMETRIC

__all__ = [
    "BLOCK", "MAX_CHUNKS", "STATUS_OK", "STATUS_STOP_LOSS", "STATUS_NONFINITE",
    "KIND_SYMMETRIC", "KIND_BANKS_SRELU", "KIND_BANKS_RELU", "METHOD_NAMES", "Rule",
    "make_rule", "chunk_layout", "tile_width", "packed_shapes", "pack_samples", "fill_forward",
    "fill_backward", "loss_and_grad", "loss_and_grad_parallel", "forward", "alignments",
    "gd_segment", "gd_segment_batch", "stack_rules", "announce_compile",
]
