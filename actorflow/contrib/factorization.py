"""``af.contrib.factorization``: TF1's `KMeans` graph builder (the part of
tf.contrib.factorization that example programs use), in the TF 1.4+ form:

    kmeans = KMeans(inputs=X, num_clusters=25, distance_metric='cosine', use_mini_batch=True)
    (all_scores, cluster_idx, scores, cluster_centers_initialized, cluster_centers_var,
     init_op, train_op) = kmeans.training_graph()
    sess.run(init_op, {X: data}); sess.run(train_op, {X: data})

State: `cluster_centers` [k, d] and, for mini-batch updates, `cluster_counts` [k] (points
seen per centre), both non-trainable variables, and `initialized` (bool). `init_op` picks k
distinct random rows of the inputs (RANDOM_INIT, seeded by `random_seed`), or the rows of a
given tensor/array of initial clusters, once (later runs keep the centres). Each train step
assigns every point to its nearest centre and then
  - full batch (use_mini_batch=False): moves each centre to the mean of its points (a centre
    with none stays);
  - mini-batch: count_c += n_c and centre_c += (sum of its points - n_c centre_c) / count_c,
    the running mean over every point seen (TF's update with mini_batch_steps_per_iteration=1).
Distances: 'squared_euclidean' (|x|^2 - 2 x.c + |c|^2) or 'cosine' (1 - x.c on unit-normalised
points and centres; centres are renormalised after each update). Inputs are a tensor or a list
of tensors (the outputs then are lists, one per input, as TF's). kmeans_plus_plus
initialisation is not built (RANDOM_INIT only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Operation, Tensor, control_dependencies, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops import (
    array_ops,
    compare_ops,
    core_ops,
    index_ops,
    join_ops,
    math_ops,
    random_ops,
    reduction_ops,
    segment_ops,
)
from actorflow.variables import Variable
from devices import dtypes
from devices.errors import InvalidArgumentError, UnimplementedError

__all__ = ["KMeans", "RANDOM_INIT", "KMEANS_PLUS_PLUS_INIT", "SQUARED_EUCLIDEAN_DISTANCE",
           "COSINE_DISTANCE"]

RANDOM_INIT = "random"
KMEANS_PLUS_PLUS_INIT = "kmeans_plus_plus"
KMC2_INIT = "kmc2"
SQUARED_EUCLIDEAN_DISTANCE = "squared_euclidean"
COSINE_DISTANCE = "cosine"


class KMeans:
    def __init__(self, inputs: Any, num_clusters: Any, initial_clusters: Any = RANDOM_INIT,
                 distance_metric: str = SQUARED_EUCLIDEAN_DISTANCE,
                 use_mini_batch: bool = False, mini_batch_steps_per_iteration: int = 1,
                 random_seed: int = 0, kmeans_plus_plus_num_retries: int = 2,
                 kmc2_chain_length: int = 200):
        if distance_metric not in (SQUARED_EUCLIDEAN_DISTANCE, COSINE_DISTANCE):
            raise InvalidArgumentError(f"KMeans distance_metric must be "
                                       f"'{SQUARED_EUCLIDEAN_DISTANCE}' or '{COSINE_DISTANCE}',"
                                       f" got {distance_metric!r}")
        if isinstance(initial_clusters, str) and initial_clusters != RANDOM_INIT:
            raise UnimplementedError(f"KMeans initial_clusters={initial_clusters!r} is not "
                                     f"built; use '{RANDOM_INIT}' or give the centres")
        if mini_batch_steps_per_iteration != 1:
            raise UnimplementedError("KMeans mini_batch_steps_per_iteration other than 1 is "
                                     "not built")
        self._single = not isinstance(inputs, list | tuple)
        self._inputs = [convert_to_tensor(x) for x in ([inputs] if self._single else inputs)]
        self._k = int(num_clusters)
        self._init = initial_clusters
        self._cosine = distance_metric == COSINE_DISTANCE
        self._mini_batch = bool(use_mini_batch)
        self._seed = random_seed
        d = self._inputs[0].shape[-1] if self._inputs[0].shape.rank == 2 else None
        if d is None:
            raise InvalidArgumentError(f"KMeans needs inputs of shape [n, d] with d known, got "
                                       f"{self._inputs[0].shape}")
        self._d = int(d)

    def _points(self) -> Tensor:
        x = (self._inputs[0] if len(self._inputs) == 1
             else join_ops.concat(self._inputs, 0))
        return _unit(x) if self._cosine else x

    def _distances(self, x: Tensor, centers: Any) -> Tensor:
        """[n, k]: squared euclidean or cosine distance of each point to each centre."""
        dots = math_ops.matmul(x, centers, transpose_b=True)
        if self._cosine:
            return math_ops.subtract(1.0, dots)
        xx = reduction_ops.reduce_sum(math_ops.square(x), 1, keepdims=True)
        cc = reduction_ops.reduce_sum(math_ops.square(centers), 1)
        return math_ops.add(math_ops.subtract(xx, math_ops.multiply(2.0, dots)), cc)

    def training_graph(self) -> tuple:
        """(all_scores, cluster_idx, scores, cluster_centers_initialized,
        cluster_centers_var, init_op, train_op), as TF 1.4+'s."""
        with name_scope(None, "kmeans"):
            dt = self._inputs[0].dtype
            centers = Variable(np.zeros((self._k, self._d), dt.np), trainable=False,
                               name="clusters")
            counts = Variable(np.zeros((self._k,), dt.np), trainable=False,
                              name="clusters_count")
            initialized = Variable(False, trainable=False, name="initialized")
            init_op = self._init_op(centers, counts, initialized)
            all_scores, idx, scores = [], [], []
            for x in self._inputs:
                xn = _unit(x) if self._cosine else x
                dist = self._distances(xn, centers)
                all_scores.append(dist)
                idx.append(math_ops.argmin(dist, 1))
                scores.append(reduction_ops.reduce_min(dist, 1))
            train_op = self._train_op(centers, counts, idx)
        return (all_scores, tuple(idx), scores, initialized.read_value(), centers, init_op,
                train_op)

    def _init_op(self, centers: Variable, counts: Variable, initialized: Variable
                 ) -> Operation:
        x = self._points()
        if isinstance(self._init, str):
            n = array_ops.shape(x)[0]
            pick = random_ops.random_shuffle(_range(n), seed=self._seed)[:self._k]
            chosen = index_ops.gather(x, pick)
        else:
            chosen = convert_to_tensor(self._init, dtype=x.dtype)
            chosen = _unit(chosen) if self._cosine else chosen

        done = initialized.read_value()  # read before this op's own assignment below
        set_c = centers.assign(compare_ops.where(done, centers.read_value(), chosen))
        set_n = counts.assign(compare_ops.where(done, counts.read_value(),
                                                array_ops.zeros_like(counts)))
        with control_dependencies([set_c, set_n]):
            return core_ops.group(initialized.assign(True), name="init_op")

    def _train_op(self, centers: Variable, counts: Variable, idx: list[Tensor]) -> Operation:
        x = self._points()
        i = idx[0] if len(idx) == 1 else join_ops.concat(idx, 0)
        i32 = compare_ops.cast(i, dtypes.int32)
        sums = segment_ops.unsorted_segment_sum(x, i32, self._k)
        n_c = segment_ops.unsorted_segment_sum(
            array_ops.ones_like(compare_ops.cast(i32, x.dtype)), i32, self._k)
        old = centers.read_value()
        if self._mini_batch:
            new_counts = math_ops.add(counts.read_value(), n_c)
            step = math_ops.divide(math_ops.subtract(sums, math_ops.multiply(
                array_ops.expand_dims(n_c, 1), old)),
                array_ops.expand_dims(math_ops.maximum(new_counts, 1.0), 1))
            new = math_ops.add(old, step)
            updates = [counts.assign(new_counts)]
        else:
            mean = math_ops.divide(sums, array_ops.expand_dims(math_ops.maximum(n_c, 1.0), 1))
            new = compare_ops.where(array_ops.expand_dims(math_ops.greater(n_c, 0.0), 1),
                                    mean, old)
            updates = []
        if self._cosine:
            new = _unit(new)
        return core_ops.group(centers.assign(new), *updates, name="train_op")


def _unit(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norm = math_ops.sqrt(reduction_ops.reduce_sum(math_ops.square(x), 1, keepdims=True))
    return math_ops.divide(x, math_ops.maximum(norm, 1e-12))


def _range(n: Any) -> Tensor:
    from actorflow.ops.partition_ops import range as range_
    return range_(n)
