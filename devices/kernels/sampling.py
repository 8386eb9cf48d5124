"""Kernels of the candidate samplers (``af.nn.log_uniform_candidate_sampler`` and
``uniform_candidate_sampler``), used by sampled losses (nce_loss, sampled_softmax_loss).

Each node owns a generator (`random.node_draws`). Outputs: the sampled classes [num_sampled]
(int64), the expected count of each true class [batch, num_true] and of each sampled class
[num_sampled] (float32). With ``unique`` the draws are distinct, taken by rejection, and the
expected counts are 1 - (1 - p) ** tries, as TensorFlow computes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.kernels.random import node_draws
from devices.kernels.registry import KernelContext, register_kernel


def _sampler(kind: str) -> Any:
    def factory(k: KernelContext) -> Any:
        get = node_draws(k)
        n = int(k.attrs["num_sampled"])
        rmax = int(k.attrs["range_max"])
        unique = bool(k.attrs["unique"])
        if unique and n > rmax:
            raise InvalidArgumentError(f"a unique candidate sampler cannot draw {n} distinct "
                                       f"classes out of range_max={rmax}")
        log_r = np.log(rmax + 1.0)

        def prob(c: np.ndarray) -> np.ndarray:
            c = c.astype(np.float64)
            if kind == "uniform":
                return np.full(c.shape, 1.0 / rmax)
            return (np.log(c + 2.0) - np.log(c + 1.0)) / log_r

        def draw(m: int) -> np.ndarray:
            u = get().uniform((m,), np.dtype(np.float64))
            if kind == "uniform":
                c = np.floor(u * rmax)
            else:
                c = np.floor(np.exp(u * log_r)) - 1.0
            return np.clip(c, 0, rmax - 1).astype(np.int64)

        def compute(true_classes: Any) -> tuple[Any, Any, Any]:
            tries = n
            if unique:
                seen: dict[int, None] = {}
                tries = 0
                while len(seen) < n:
                    for c in draw(max(n - len(seen), 1)):
                        tries += 1
                        seen.setdefault(int(c), None)
                        if len(seen) == n:
                            break
                sampled = np.fromiter(seen, dtype=np.int64, count=n)
            else:
                sampled = draw(n)

            def expected(c: np.ndarray) -> np.ndarray:
                p = prob(c)
                if unique:
                    return (-np.expm1(tries * np.log1p(-p))).astype(np.float32)
                return (p * n).astype(np.float32)
            tc = np.asarray(true_classes).astype(np.int64)
            return sampled, expected(tc), expected(sampled)
        return compute
    return factory


register_kernel("LogUniformCandidateSampler", stateful=True,
                device_types=("CPU",))(_sampler("log_uniform"))
register_kernel("UniformCandidateSampler", stateful=True,
                device_types=("CPU",))(_sampler("uniform"))
