"""torch.ops.solsa.*: the fused SOLSA kernels registered with torch.library.

Importing this package registers ``torch.ops.solsa.step``, ``learn``, ``spatial_error``,
``forward_segment`` and ``learn_segment`` (CPU and CUDA implementations plus fake kernels for
torch.compile). docs/OPS.md documents each schema, its shapes and what it mutates.
"""
from ._lib import input_checks, input_checks_enabled
from .forward_segment import forward_segment
from .learn_segment import learn_segment
from .learn import learn
from .spatial_error import spatial_error
from .step import step

__all__ = ["step", "learn", "spatial_error", "forward_segment", "learn_segment", "input_checks",
           "input_checks_enabled"]
