"""CIFAR ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Section 4.2) at any width.

ResNet-N has N = 6D + 2 weighted layers: a 3x3 convolution of W filters, three stages of D residual blocks of
W, 2W and 4W filters (each block two 3x3 convolutions, BatchNorm after each; the first block of stages 2 and 3
halves the resolution with stride 2), global average pooling and one dense output layer. Where a block changes
the width its shortcut is a 1x1 convolution of stride 2 with BatchNorm (open_lth's models/cifar_resnet.py, whose
names `cifar_resnet_N[_W]` are lth_tf's `resnetN[_wW]`); convolutions have no bias (BatchNorm follows them).

Weights: 9*3*W for the first convolution; per stage s (f = W * 2^s, f_in the previous width) 9*f_in*f +
(2D - 1)*9*f*f, plus f_in*f for a 1x1 shortcut; 4W*classes + classes for the output. ResNet-20 at W=16 has
270,256 convolution weights: the arXiv v1 paper's "Resnet-18" (Figure 1, 271K), which lth_tf keeps as `resnet18`.

Layer names follow the order of creation: conv1/bn1 first, then per block its two convolutions and, where there
is one, its shortcut (conv<i>/bn<i> counting on), then `avg_pool` and `output`.
"""
from __future__ import annotations



def resnet(layers, inputs, num_classes, init, reg, dropout, depth: int = 20, width: int = 16):
    """Logits of ResNet-`depth` at width `width` (see the module docstring) on `inputs`; `layers`: the Keras
    flavour's layers module (tf_keras or Keras 3, lth_tf.models.architectures)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has 6D + 2 layers (20, 32, 44, 56, 110, ...), not {depth}")
    blocks = (depth - 2) // 6
    count = [0]

    def conv_bn(x, filters, strides=1, kernel=3, relu=True):
        count[0] += 1
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          kernel_initializer=init(), kernel_regularizer=reg, name=f"conv{count[0]}")(x)
        x = layers.BatchNormalization(name=f"bn{count[0]}")(x)
        return layers.ReLU()(x) if relu else x

    x = conv_bn(inputs, width)
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = conv_bn(x, filters, strides)
            y = conv_bn(y, filters, relu=False)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = conv_bn(x, filters, strides, kernel=1, relu=False)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout1")(x)
    return layers.Dense(num_classes, kernel_initializer=init(), kernel_regularizer=reg, name="output")(x)
