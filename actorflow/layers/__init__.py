"""``af.layers``: TF1's layers, as functions (``af.layers.dense``) and classes
(``af.layers.Dense``). See `actorflow.layers.core` for how a layer owns its variables.

    h = af.layers.conv2d(images, 32, 5, padding="same", activation=af.nn.relu)
    h = af.layers.max_pooling2d(h, 2, 2)
    h = af.layers.dropout(af.layers.flatten(h), rate=0.4, training=is_training)
    logits = af.layers.dense(h, 10)
"""

from actorflow.layers.convolutional import (
    AveragePooling1D,
    Conv1D,
    MaxPooling1D,
    SeparableConv2D,
    average_pooling1d,
    conv1d,
    max_pooling1d,
    separable_conv2d,
)
from actorflow.layers.core import (
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPooling2D,
    average_pooling2d,
    batch_normalization,
    conv2d,
    conv2d_transpose,
    dense,
    dropout,
    flatten,
    max_pooling2d,
)

__all__ = ["Conv1D", "MaxPooling1D", "AveragePooling1D", "SeparableConv2D", "conv1d",
           "max_pooling1d", "average_pooling1d", "separable_conv2d",
           "Conv2DTranspose", "conv2d_transpose", "Layer", "Dense", "Conv2D",
           "MaxPooling2D", "AveragePooling2D", "Dropout",
           "Flatten", "BatchNormalization", "dense", "conv2d", "max_pooling2d",
           "average_pooling2d", "dropout", "flatten", "batch_normalization"]
