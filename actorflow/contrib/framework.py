"""``af.contrib.framework``: TF1's contrib names of the global step and variable helpers."""

from __future__ import annotations

from typing import Any

from actorflow.graph import GraphKeys, get_default_graph
from actorflow.train.training_util import get_global_step, get_or_create_global_step

__all__ = ["get_global_step", "get_or_create_global_step", "get_variables",
           "get_model_variables", "get_trainable_variables", "get_variables_by_name"]


def get_variables(scope: str | None = None, suffix: str | None = None,
                  collection: str = GraphKeys.GLOBAL_VARIABLES) -> list[Any]:
    """The variables of `collection` under `scope` whose names end with `suffix`."""
    vs = get_default_graph().get_collection(collection, scope)
    return [v for v in vs if suffix is None or v.op.name.endswith(suffix)]


def get_model_variables(scope: str | None = None, suffix: str | None = None) -> list[Any]:
    return get_variables(scope, suffix, GraphKeys.MODEL_VARIABLES)


def get_trainable_variables(scope: str | None = None, suffix: str | None = None) -> list[Any]:
    return get_variables(scope, suffix, GraphKeys.TRAINABLE_VARIABLES)


def get_variables_by_name(given_name: str, scope: str | None = None) -> list[Any]:
    return get_variables(scope, given_name)
