"""The paper's networks.

Lives here: specs.py (the model registry: name -> ModelSpec, the paper's defaults per network; no TensorFlow, so
config validation refuses a bad --model before TensorFlow starts), networks.py (the architectures as tf_keras
Functional models: a registry of builders by architecture, and `build`), cifar_resnet.py and cifar_vgg.py (the
CIFAR ResNets at any width and VGG-11/13/16/19 of the follow-up papers), user.py (your own model,
--model=package.module:function: importing, seeding, checking and describing it).
May import: lth_tf._env and tf_keras only; nothing else of lth_tf.
"""
