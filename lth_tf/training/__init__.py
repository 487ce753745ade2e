"""Training one round under a fixed mask, at dense speed, resumably.

Lives here: masked.py (the training step with the gradients of pruned weights zeroed), schedule.py (TrainSpec,
the optimizer and its learning-rate schedule, mixed precision), streams.py (the data order of a round, a pure
function of its key), backup.py (a round's state after every evaluation, for resuming), curve.py (the
evaluation curve and a round's result), trainer.py (RoundTrainer: rounds, jobs, stacked or alone), stacked.py
(several trials as one Keras model), dropout.py (positional dropout draws), convergence.py (arXiv v1 footnote 1's
convergence iteration of a curve), summaries.py (TensorBoard logs of a round), threads.py (TensorFlow's CPU
threads, from the network), frozen.py (--batchnorm_frozen, --output_frozen: parameters whose gradients are 0),
jobs.py (TrainSpec, Job, BackupSlot, RoundResult: plain data, no TensorFlow, shared with the Keras 3 engine),
engine.py (the tf_keras engine: what the experiment loop does with tf_keras models).
May import: lth_tf.models, lth_tf.data, lth_tf.pruning (and lth_tf._env, TensorFlow, tf_keras, tfmot).
"""
