"""The experiment: trials x variants x rounds, from a Config into a results directory, resumably.

Lives here: config.py (Config: validated, hashed; no TensorFlow), recipe.py (issue 26's data options and
hyperparameters resolved from the model's recipe; ConfigError), plan.py (what the rounds train: TrainSpec,
XLA, data keys, the instability pairs' PairSpec, events), experiment.py (`run`: the trials, the lottery rounds,
the controls, pruning at initialization, instability pairs), store.py and pair_store.py (the results directory,
a public contract), files.py (atomic writes and the errors of damaged files), integrity.py (the start-up check
of a directory), distribute.py (tf.distribute strategies, who writes results), signals.py (a clean stop on
SIGTERM/SIGINT), interpolation.py (the linear path between two networks, its error barrier), stability.py
(the instability sweep over rewind iterations), api.py (`run_experiment`, the experiment from Python on a model
function and arrays; `open_checked`, the start-up checks the command lines share; no TensorFlow until it runs),
engines.py (which engine trains: tf_keras, lth_tf.training.engine, or Keras 3, lth_tf.keras3.engine; the
KERAS_BACKEND check).
May import: lth_tf.training, lth_tf.pruning, lth_tf.data, lth_tf.models, lth_tf.keras3 (and lth_tf._env). config,
recipe, files, store, pair_store, integrity, signals, engines, plan, api and experiment import no TensorFlow: the command
lines refuse bad input before it starts, and the Keras 3 engine runs on JAX without it.
"""
