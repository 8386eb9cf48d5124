"""Gradient compression wrappers around any optimizer, as graph code on the worker:

- `QuantizedGradients`: 8-bit quantisation with error feedback (the int8 codes and one
  float scale per tensor are what cross to the PS; Dettmers, "8-Bit Approximations for
  Parallelism in Deep Learning", ICLR 2016; error feedback: Seide et al., "1-Bit Stochastic
  Gradient Descent ...", Interspeech 2014).
- `TopKGradients`: keep the k largest-magnitude entries (values and indices), carry
  the rest to the next step (Aji and Heafield, "Sparse Communication for Distributed Gradient
  Descent", EMNLP 2017; Lin et al., "Deep Gradient Compression", ICLR 2018). Needs `top_k`
  and `scatter_nd` (the TF1 ops issue).

    opt = af.train.QuantizedGradients(af.train.GradientDescentOptimizer(0.5))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Operation, colocate_with, control_dependencies, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import array_ops, compare_ops, math_ops, reduction_ops
from actorflow.ops.index_ops import gather
from actorflow.train.optimizer import Optimizer, _filled
from actorflow.variables import Variable
from devices import dtypes


class _Compressed(Optimizer):
    """Compress each gradient (plus its carried error) before the wrapped optimizer."""

    def __init__(self, opt: Optimizer, name: str):
        super().__init__(False, name)
        self._opt = opt

    def _residual(self, v: Variable) -> Variable:
        with name_scope(None), control_dependencies(None):  # on the worker: no colocation
            return Variable(lambda: _filled(v, 0.0), trainable=False,
                            name=f"{v.op.name}/{self._name}_error", dtype=v.dtype)

    def apply_gradients(self, grads_and_vars: Any, global_step: Any = None,
                        name: str | None = None, **kw: Any) -> Operation:
        out, keep = [], []
        for g, v in grads_and_vars:
            if g is None:
                continue
            r = self._residual(v)
            full = math_ops.add(convert_to_tensor(g), r.read_value())
            sent, dense_sent = self._compress(full, v)
            keep.append(r.assign(math_ops.subtract(full, dense_sent)).op)
            out.append((sent, v))
        with control_dependencies(keep):
            return self._opt.apply_gradients(out, global_step=global_step, name=name, **kw)


class QuantizedGradients(_Compressed):
    """int8 codes and a per-tensor scale: g ~ scale * code, |code| <= 127."""

    def __init__(self, opt: Optimizer, name: str = "Quantized8"):
        super().__init__(opt, name)

    def _compress(self, g: Any, v: Variable) -> tuple[Any, Any]:
        scale = math_ops.maximum(math_ops.truediv(
            reduction_ops.reduce_max(math_ops.abs(g)), 127.0), 1e-12)
        code = compare_ops.cast(math_ops.round(math_ops.truediv(g, scale)), dtypes.int8)
        with colocate_with(v.op):  # decoded on the variable's device: int8 on the wire
            dq = math_ops.multiply(compare_ops.cast(code, g.dtype), scale)
        return dq, math_ops.multiply(compare_ops.cast(code, g.dtype), scale)


class TopKGradients(_Compressed):
    """The k largest |g| entries of the flattened gradient (all of a smaller variable); the
    rest carried over."""

    def __init__(self, opt: Optimizer, k: int, name: str = "TopK"):
        super().__init__(opt, name)
        self._k = int(k)

    def _compress(self, g: Any, v: Variable) -> tuple[Any, Any]:
        from actorflow.ops.linalg_ops import scatter_nd  # the TF1 ops issue
        from actorflow.ops.scan_sort_ops import top_k

        flat = array_ops.reshape(g, [-1])
        dims = v.shape.as_list() if hasattr(v.shape, "as_list") else list(v.shape)
        k = self._k if None in dims else min(self._k, int(np.prod(dims, dtype=np.int64)))
        _, idx = top_k(math_ops.abs(flat), k=k)
        vals, at = gather(flat, idx), array_ops.expand_dims(idx, 1)

        def dense() -> Any:
            return array_ops.reshape(scatter_nd(at, vals, array_ops.shape(flat)),
                                     array_ops.shape(g))
        with colocate_with(v.op):  # densified on the variable's device: k values on the wire
            sent = dense()
        return sent, dense()
