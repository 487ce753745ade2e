"""CIFAR VGG-11/13/16/19 (Simonyan & Zisserman, ICLR 2015, configurations A, B, D, E) with BatchNorm.

As open_lth's models/cifar_vgg.py (`cifar_vgg_11` ... `cifar_vgg_19`, after Liu et al., "Rethinking the Value of
Network Pruning", ICLR 2019): 3x3 `same` convolutions, each followed by BatchNorm and ReLU, 2x2 max pooling
between the blocks (four pools, so 32x32 images end at 2x2x512), average pooling and one dense layer of 512 x
classes. `vgg16` is the network of Frankle et al.'s instability paper (ICML 2020); `vgg19` is the lottery-ticket
paper's (ICLR 2019, Section 4). Convolutions have no bias here (open_lth's have one: the BatchNorm after it
makes it redundant; lth_tf's vgg19 has always been without), so a layer of f_in -> f filters holds 9*f_in*f
weights and its BatchNorm 4f (gamma, beta, moving mean and variance).
"""
from __future__ import annotations


# Filter counts and "pool" markers per depth (open_lth's plans; "M" there).
PLANS = {
    11: (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool", 512, 512),
    13: (64, 64, "pool", 128, 128, "pool", 256, 256, "pool", 512, 512, "pool", 512, 512),
    16: (64, 64, "pool", 128, 128, "pool", 256, 256, 256, "pool", 512, 512, 512, "pool", 512, 512, 512),
    19: (64, 64, "pool", 128, 128, "pool", 256, 256, 256, 256, "pool", 512, 512, 512, 512, "pool",
         512, 512, 512, 512),
}


def vgg(layers, inputs, num_classes, init, reg, dropout, depth: int = 19):
    """Logits of VGG-`depth` (11, 13, 16 or 19) on `inputs`: conv1..convN with bn1..bnN, pool1..pool4, output;
    `layers`: the Keras flavour's layers module (lth_tf.models.architectures)."""
    x, conv, pool = inputs, 0, 0
    for step in PLANS[depth]:
        if step == "pool":
            pool += 1
            x = layers.MaxPooling2D(2, name=f"pool{pool}")(x)
            continue
        conv += 1
        x = layers.Conv2D(step, 3, padding="same", use_bias=False, kernel_initializer=init(),
                          kernel_regularizer=reg, name=f"conv{conv}")(x)
        x = layers.BatchNormalization(name=f"bn{conv}")(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout1")(x)
    return layers.Dense(num_classes, kernel_initializer=init(), kernel_regularizer=reg, name="output")(x)
