"""TF1 contrib's training helpers: `embed_sequence` and `optimize_loss` (``af.contrib.layers``),
written over the core layers, optimizers and learning-rate schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actorflow.graph import GraphKeys, Tensor, control_dependencies, get_default_graph
from actorflow.ops import core_ops, nn_ops
from actorflow.variable_scope import get_variable, variable_scope

__all__ = ["embed_sequence", "optimize_loss", "OPTIMIZER_CLS_NAMES"]


def embed_sequence(ids: Any, vocab_size: int | None = None, embed_dim: int | None = None,
                   unique: bool = False, initializer: Any = None, regularizer: Any = None,
                   trainable: bool = True, scope: str | None = None, reuse: Any = None) -> Tensor:
    """[batch, length] ids -> [batch, length, embed_dim] rows of an "embeddings" variable."""
    if vocab_size is None or embed_dim is None:
        raise ValueError("embed_sequence needs vocab_size and embed_dim")
    with variable_scope(scope or "EmbedSequence", reuse=reuse):
        emb = get_variable("embeddings", [vocab_size, embed_dim], initializer=initializer,
                           regularizer=regularizer, trainable=trainable)
        return nn_ops.embedding_lookup(emb, ids)


def _optimizers() -> dict[str, Any]:
    from actorflow import train
    return {"Adagrad": train.AdagradOptimizer, "Adam": train.AdamOptimizer,
            "Ftrl": train.FtrlOptimizer, "Momentum": train.MomentumOptimizer,
            "RMSProp": train.RMSPropOptimizer, "SGD": train.GradientDescentOptimizer}


OPTIMIZER_CLS_NAMES = ("Adagrad", "Adam", "Ftrl", "Momentum", "RMSProp", "SGD")


def optimize_loss(loss: Any, global_step: Any, learning_rate: Any, optimizer: Any,
                  gradient_noise_scale: float | None = None,
                  gradient_multipliers: dict[Any, float] | None = None,
                  clip_gradients: Any = None,
                  learning_rate_decay_fn: Callable[[Any, Any], Any] | None = None,
                  update_ops: list[Any] | None = None, variables: list[Any] | None = None,
                  name: str | None = None, summaries: Any = None, colocate_gradients_with_ops:
                  bool = False, increment_global_step: bool = True) -> Tensor:
    """One training op: optimizer by name ("SGD", "Adam", ...), class, callable or instance;
    optional learning-rate decay, gradient multipliers, global-norm clipping (a float) or a
    clipping function; the graph's UPDATE_OPS run first. Returns the loss after the update."""
    from actorflow import train
    from actorflow.ops.composite_ops import clip_by_global_norm
    if global_step is None:
        global_step = train.get_global_step()
    lr = learning_rate
    if learning_rate_decay_fn is not None:
        lr = learning_rate_decay_fn(lr, global_step)
    if isinstance(optimizer, str):
        classes = _optimizers()
        if optimizer not in classes:
            raise ValueError(f"Optimizer name should be one of [{', '.join(classes)}], you "
                             f"provided {optimizer}.")
        opt = classes[optimizer](lr)
    elif isinstance(optimizer, type):
        opt = optimizer(lr)
    elif isinstance(optimizer, train.Optimizer):
        opt = optimizer
    elif callable(optimizer):
        opt = optimizer(lr) if lr is not None else optimizer()
    else:
        raise ValueError(f"optimizer must be a name, an Optimizer class or instance or a "
                         f"callable, got {optimizer!r}")
    ops = update_ops if update_ops is not None else get_default_graph().get_collection(
        GraphKeys.UPDATE_OPS)
    with control_dependencies(list(ops)):
        grads_vars = opt.compute_gradients(loss, var_list=variables)
    grads_vars = [(g, v) for g, v in grads_vars if g is not None]
    if gradient_multipliers:
        mult = {k if isinstance(k, str) else k.name: m for k, m in gradient_multipliers.items()}
        grads_vars = [(g * mult[v.name] if v.name in mult else g, v) for g, v in grads_vars]
    if isinstance(clip_gradients, float | int):
        clipped, _ = clip_by_global_norm([g for g, _ in grads_vars],
                                                  float(clip_gradients))
        grads_vars = list(zip(clipped, [v for _, v in grads_vars], strict=True))
    elif callable(clip_gradients):
        grads_vars = clip_gradients(grads_vars)
    apply = opt.apply_gradients(grads_vars, global_step=global_step if increment_global_step
                                else None, name=name or "OptimizeLoss")
    with control_dependencies([apply]):
        return core_ops.identity(loss, name="train_op")
