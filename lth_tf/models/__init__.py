"""The paper's networks.

Lives here: specs.py (the model registry: name -> ModelSpec, the paper's defaults per network; no TensorFlow, so
config validation refuses a bad --model before TensorFlow starts), architectures.py (the architectures as Keras
Functional models, written once for tf_keras and Keras 3: the Keras module is an argument; no import of either),
networks.py (`build`: the architectures with tf_keras).
May import: lth_tf._env and tf_keras only; nothing else of lth_tf.
"""
