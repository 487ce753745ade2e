"""The paper's networks.

Lives here: specs.py (the model registry: name -> ModelSpec, the paper's defaults per network; no TensorFlow, so
config validation refuses a bad --model before TensorFlow starts), architectures.py (the architectures as Keras
Functional models, written once for tf_keras and Keras 3: the Keras module is an argument; no import of either),
cifar_resnet.py and cifar_vgg.py (the CIFAR ResNets at any width and VGG-11/13/16/19 of the follow-up papers,
likewise), networks.py (`build`: the architectures with tf_keras), user.py (your own model,
--model=package.module:function: importing, seeding, checking and describing it).
May import: lth_tf._env and tf_keras only; nothing else of lth_tf.
"""
