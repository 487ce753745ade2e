"""The paper's networks as plain tf_keras Functional models (the architectures: lth_tf.models.architectures).

Layer names are stable and meaningful, because masks and stored weights are keyed by them: convolutions are
``conv1, conv2, ...``, hidden dense layers ``fc1, fc2, ...``, the last dense layer ``output``. Models end in
logits (no softmax); train them with ``from_logits=True``.

    >>> from lth_tf.models import networks
    >>> model = networks.build("lenet300_100", input_shape=(28, 28, 1), num_classes=10, seed=0)
    >>> [layer.name for layer in model.layers][-3:]
    ['fc1', 'fc2', 'output']
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import tf_keras as keras

from lth_tf.models.architectures import ARCHITECTURES, build_with  # noqa: F401  (ARCHITECTURES re-exported)


def build(name: str, input_shape: tuple, num_classes: int, seed: int = 0, dropout: float = 0.0,
          init: str | None = None, weight_decay: float | None = None) -> keras.Model:
    """Builds model `name` with weights drawn deterministically from `seed`.

    The initialiser and weight decay are the model's (`MODELS[name].init`, `.weight_decay`) unless given
    (--init, --weight_decay).
    """
    return build_with(keras, name, input_shape, num_classes, seed=seed, dropout=dropout, init=init,
                      weight_decay=weight_decay)
