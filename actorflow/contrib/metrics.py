"""``af.contrib.metrics``: TF1's streaming_* names of `af.metrics`."""

from actorflow.metrics import accuracy as streaming_accuracy
from actorflow.metrics import auc as streaming_auc
from actorflow.metrics import mean as streaming_mean
from actorflow.metrics import mean_absolute_error as streaming_mean_absolute_error
from actorflow.metrics import mean_squared_error as streaming_mean_squared_error
from actorflow.metrics import precision as streaming_precision
from actorflow.metrics import recall as streaming_recall
from actorflow.metrics import root_mean_squared_error as streaming_root_mean_squared_error

__all__ = ["streaming_accuracy", "streaming_auc", "streaming_mean",
           "streaming_mean_absolute_error", "streaming_mean_squared_error",
           "streaming_precision", "streaming_recall", "streaming_root_mean_squared_error"]
