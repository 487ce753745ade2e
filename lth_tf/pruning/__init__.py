"""Pruning: which weights a ticket keeps, and the weights it rewinds to.

Lives here: ranking.py (the magnitude keep-count rule, numpy only, shared with lth_tf.keras3), arrays.py (the
pruning steps on plain arrays, numpy only: nested magnitude masks layer-wise or global, one-shot, the random
controls; both engines use them), masks.py (masks of tf_keras models; tfmot PruneLowMagnitude wrapping;
`prune_model`; re-exports arrays.py's steps), init_scores.py (pruning at
initialization: random, magnitude, SNIP, GraSP, SynFlow scores), rewind.py (`RewindCallback`, `snapshot`,
`restore`).
May import: lth_tf._env, TensorFlow, tf_keras, tfmot; nothing else of lth_tf.
"""
