"""Kernels of the neural-network ops: activations, softmax and its gradients, the fused
losses (each returns what its gradient needs, so nothing is recomputed), bias_add, l2_loss and
dropout masks. Convolution and pooling are in `devices.kernels.conv`.

Written once against the device's array module (``k.xp``); per-node work (axes, dtypes,
allocators) is done in the factories, and large outputs go into pooled buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.loop_loader import LoopLoader
from devices.kernels.outputs import out_allocator
from devices.kernels.random import node_draws
from devices.kernels.registry import KernelContext, register_kernel


# ------------------------------------------------------------------------------------------
# Activations and softmax
# ------------------------------------------------------------------------------------------
@register_kernel("Relu")
def _relu(k: KernelContext) -> Any:
    maximum = k.xp.maximum
    alloc = out_allocator(k)
    zero = k.out_dtypes[0].np.type(0)
    if alloc is None:
        return lambda x: (maximum(x, zero),)
    return lambda x: (maximum(x, zero, out=alloc()),)


@register_kernel("ReluGrad")
def _relu_grad(k: KernelContext) -> Any:
    """ReluGrad(g, y): g where the relu's output y is positive, else 0."""
    xp = k.xp
    alloc = out_allocator(k)
    zero = k.out_dtypes[0].np.type(0)

    def compute(g: Any, y: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else None
        return (xp.multiply(g, xp.greater(y, zero), out=out),)
    return compute


def _axis(k: KernelContext) -> int:
    return int(k.attrs.get("axis", -1))


@register_kernel("Softmax")
def _softmax(k: KernelContext) -> Any:
    xp = k.xp
    axis = _axis(k)
    alloc = out_allocator(k)

    def compute(x: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else xp.empty_like(x)
        if x.size == 0:  # nothing to normalise (an empty batch or class axis)
            return (out,)
        xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
        xp.exp(out, out=out)
        xp.divide(out, out.sum(axis=axis, keepdims=True), out=out)
        return (out,)
    return compute


@register_kernel("LogSoftmax")
def _log_softmax(k: KernelContext) -> Any:
    xp = k.xp
    axis = _axis(k)
    alloc = out_allocator(k)

    def compute(x: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else xp.empty_like(x)
        if x.size == 0:
            return (out,)
        xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
        out -= xp.log(xp.exp(out).sum(axis=axis, keepdims=True))
        return (out,)
    return compute


@register_kernel("SoftmaxGrad")
def _softmax_grad(k: KernelContext) -> Any:
    """SoftmaxGrad(y, g) = (g - sum(g * y)) * y along the axis."""
    xp = k.xp
    axis = _axis(k)
    alloc = out_allocator(k)

    def compute(y: Any, g: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else xp.empty_like(y)
        xp.multiply(g, y, out=out)
        s = out.sum(axis=axis, keepdims=True)
        xp.subtract(g, s, out=out)
        out *= y
        return (out,)
    return compute


@register_kernel("LogSoftmaxGrad")
def _log_softmax_grad(k: KernelContext) -> Any:
    """LogSoftmaxGrad(y, g) = g - exp(y) * sum(g) along the axis (y is the log-softmax)."""
    xp = k.xp
    axis = _axis(k)
    alloc = out_allocator(k)

    def compute(y: Any, g: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else xp.empty_like(y)
        xp.exp(y, out=out)
        out *= g.sum(axis=axis, keepdims=True)
        xp.subtract(g, out, out=out)
        return (out,)
    return compute


# ------------------------------------------------------------------------------------------
# Fused losses
# ------------------------------------------------------------------------------------------
@register_kernel("SoftmaxCrossEntropyWithLogits")
def _softmax_xent(k: KernelContext) -> Any:
    """(loss, backprop): loss = sum(labels * (logsumexp(x) - x)), backprop = softmax - labels."""
    xp = k.xp
    axis = _axis(k)
    alloc = out_allocator(k, 1)

    # the ufuncs' reduce skips the array methods' Python wrappers (~1-2 us a call; the same
    # reduction, so the same values)
    vmax, vsum = xp.maximum.reduce, xp.add.reduce

    def compute(logits: Any, labels: Any) -> tuple[Any, Any]:
        sh = logits - vmax(logits, axis=axis, keepdims=True)
        bp = alloc() if alloc is not None else xp.empty_like(sh)
        xp.exp(sh, out=bp)
        s = vsum(bp, axis=axis, keepdims=True)
        bp /= s
        bp -= labels
        xp.subtract(xp.log(s), sh, out=sh)      # sh is now -log_softmax
        sh *= labels
        return vsum(sh, axis=axis), bp
    return compute


def _label_error(labels: Any, i: int, logits_shape: tuple[int, ...]) -> InvalidArgumentError:
    c = logits_shape[-1]
    pos = tuple(int(p) for p in np.unravel_index(i, labels.shape))
    return InvalidArgumentError(
        f"label {int(labels.reshape(-1)[i])} at position {pos} is outside the valid range "
        f"[0, {c}) of the {c} classes of the logits (shape {tuple(logits_shape)})")


XENT_LOOP = LoopLoader("devices.kernels.xent_loop", "LOOPS")
_XENT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_XENT_LABELS = (np.dtype(np.int32), np.dtype(np.int64))


@register_kernel("SparseSoftmaxCrossEntropyWithLogits")
def _sparse_softmax_xent(k: KernelContext) -> Any:
    """(loss, backprop) from logits [..., c] and integer labels [...]. Lean on small shapes:
    the ufuncs' reduce (no method wrappers), the label check as one reduction (the labels
    seen as unsigned, so a negative label is a huge one), and the label's entries picked by
    flat index (``row * c + label``, the row offsets kept per batch size) instead of fancy
    indexing with a fresh arange. A label outside [0, c) is TF's InvalidArgumentError.

    On a CPU, C-contiguous 2-D float32/float64 logits of 8-128 classes with int32/int64
    labels take two compiled passes around NumPy's exp and log (`devices.kernels.xent_loop`:
    the NumPy path's bits, the same error), once they are loaded off this thread
    (`LoopLoader`); until then, and for anything else, the NumPy path below."""
    xp = k.xp
    alloc = out_allocator(k, 1)
    vmax, vsum = xp.maximum.reduce, xp.add.reduce
    offsets: dict[tuple[int, int], Any] = {}
    loader = XENT_LOOP if xp is np else None
    if loader is not None:
        loader.start()
    empty, exp, log, subtract = np.empty, np.exp, np.log, np.subtract

    def compute(logits: Any, labels: Any) -> tuple[Any, Any]:
        if loader is not None:
            loops = loader.fn
            if (loops is not None and logits.ndim == 2 and logits.dtype in _XENT_DTYPES
                    and labels.dtype in _XENT_LABELS and logits.flags.c_contiguous
                    and labels.ndim == 1 and labels.flags.c_contiguous
                    and 8 <= logits.shape[1] <= 128 and logits.shape[0]
                    and logits.shape[0] == labels.shape[0]):
                shift, finish = loops
                bp = alloc() if alloc is not None else empty(logits.shape, logits.dtype)
                loss = empty(labels.shape, logits.dtype)
                bad = shift(logits, labels, bp, loss)  # bp = sh; loss = sh at the label
                if bad >= 0:
                    raise _label_error(labels, bad, logits.shape)
                exp(bp, out=bp)
                sums = empty(labels.shape, logits.dtype)
                finish(labels, bp, sums)
                log(sums, out=sums)
                return subtract(sums, loss, out=loss), bp
        c = logits.shape[-1]
        flat = labels.reshape(-1)
        n = flat.shape[0]
        if n:
            bad = flat.view(np.uint64 if flat.dtype.itemsize == 8 else np.uint32) \
                if flat.dtype.kind == "i" and xp is np else None
            if bad is not None:
                if int(vmax(bad)) >= c:
                    raise _label_error(labels, int(xp.argmax(bad >= c)), logits.shape)
            else:
                out = (flat < 0) | (flat >= c)
                if bool(out.any()):
                    raise _label_error(labels, int(xp.argmax(out)), logits.shape)
        sh = logits - vmax(logits, axis=-1, keepdims=True)
        bp = alloc() if alloc is not None else xp.empty_like(sh)
        xp.exp(sh, out=bp)
        s = vsum(bp, axis=-1, keepdims=True)
        bp /= s
        key = (n, c)
        off = offsets.get(key)
        if off is None:
            off = xp.arange(n) * c
            if len(offsets) < 64:
                offsets[key] = off
        idx = flat + off
        loss = xp.log(s).reshape(-1) - sh.reshape(-1).take(idx)
        bflat = bp.reshape(-1)
        bflat[idx] -= 1
        return loss.reshape(labels.shape).astype(logits.dtype, copy=False), bp
    return compute


@register_kernel("ExpandDimsMul")
def _expand_dims_mul(k: KernelContext) -> Any:
    """ExpandDimsMul(vec, mat) = expand_dims(vec, axis) * mat (the losses' gradients)."""
    xp = k.xp
    axis = _axis(k)
    alloc = out_allocator(k)

    if axis == -1:  # the common case: a new last axis by indexing (expand_dims: ~2 us more)
        def last(vec: Any, mat: Any) -> tuple[Any]:
            out = alloc() if alloc is not None else None
            return (xp.multiply(vec[..., None], mat, out=out),)
        return last

    def compute(vec: Any, mat: Any) -> tuple[Any]:
        out = alloc() if alloc is not None else None
        return (xp.multiply(xp.expand_dims(vec, axis), mat, out=out),)
    return compute


def _stable_sigmoid(xp: Any, x: Any) -> Any:
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@register_kernel("SigmoidCrossEntropyWithLogits")
def _sigmoid_xent(k: KernelContext) -> Any:
    """max(x, 0) - x * z + log(1 + exp(-|x|)), stable for any x."""
    xp = k.xp
    alloc = out_allocator(k)

    def compute(x: Any, z: Any) -> tuple[Any]:
        t = xp.abs(x)
        xp.negative(t, out=t)
        xp.exp(t, out=t)
        xp.log1p(t, out=t)
        out = xp.maximum(x, 0, out=alloc() if alloc is not None else None)
        out -= x * z
        out += t
        return (out,)
    return compute


@register_kernel("SigmoidCrossEntropyWithLogitsGrad")
def _sigmoid_xent_grad(k: KernelContext) -> Any:
    """(g * (sigmoid(x) - z), -g * x): the gradients w.r.t. the logits and the labels."""
    xp = k.xp

    def compute(x: Any, z: Any, g: Any) -> tuple[Any, Any]:
        dx = _stable_sigmoid(xp, x)
        dx -= z
        dx *= g
        dz = xp.multiply(g, x)
        xp.negative(dz, out=dz)
        return dx, dz
    return compute


@register_kernel("L2Loss")
def _l2_loss(k: KernelContext) -> Any:
    xp = k.xp
    dt = k.out_dtypes[0].np

    def compute(x: Any) -> tuple[Any]:
        v = x.reshape(-1)
        return (xp.asarray(xp.dot(v, v) * 0.5, dtype=dt),)
    return compute


# ------------------------------------------------------------------------------------------
# bias_add
# ------------------------------------------------------------------------------------------
def _channel_axis(k: KernelContext) -> int:
    return 1 if k.attrs.get("data_format", "NHWC") == "NCHW" else -1


@register_kernel("BiasAdd")
def _bias_add(k: KernelContext) -> Any:
    xp = k.xp
    alloc = out_allocator(k)
    nchw = _channel_axis(k) == 1

    def compute(x: Any, b: Any) -> tuple[Any]:
        if nchw:
            b = b.reshape((-1,) + (1,) * (x.ndim - 2))
        return (xp.add(x, b, out=alloc() if alloc is not None else None),)
    return compute


@register_kernel("BiasAddGrad")
def _bias_add_grad(k: KernelContext) -> Any:
    nchw = _channel_axis(k) == 1

    def compute(g: Any) -> tuple[Any]:
        if nchw:
            return (g.sum(axis=(0,) + tuple(range(2, g.ndim))),)
        return (g.reshape(-1, g.shape[-1]).sum(axis=0),)
    return compute


# ------------------------------------------------------------------------------------------
# Dropout
# ------------------------------------------------------------------------------------------
@register_kernel("DropoutMask", stateful=True)
def _dropout_mask(k: KernelContext) -> Any:
    """DropoutMask(shape, keep_prob): 1/keep_prob with probability keep_prob, else 0.

    The random stream is the node's generator in the device's resources (`node_draws`, as the
    random ops): every compiled step that runs the node continues one stream, and a graph with
    a seed draws the same masks in every new session."""
    xp = k.xp
    dt = k.out_dtypes[0].np
    gen_dt = dt if dt in (np.float32, np.float64) else np.dtype(np.float32)
    draws = node_draws(k)

    def compute(shape: Any, keep_prob: Any) -> tuple[Any]:
        kp = float(keep_prob)
        if not 0.0 < kp <= 1.0:
            raise InvalidArgumentError(
                f"dropout keep_prob must be in (0, 1], got {kp} (rate {1.0 - kp}); feed a "
                f"probability of keeping each unit")
        u = draws().uniform(tuple(int(d) for d in shape), gen_dt)
        xp.less(u, kp, out=u)
        u *= 1.0 / kp
        return (u if u.dtype == dt else u.astype(dt),)
    return compute
