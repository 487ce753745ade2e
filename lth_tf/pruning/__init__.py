"""Pruning: which weights a ticket keeps, and the weights it rewinds to.

Lives here: ranking.py (the magnitude keep-count rule, numpy only, shared with lth_tf.keras3), masks.py (magnitude
masks, nested, layer-wise or global; tfmot PruneLowMagnitude wrapping; `prune_model`), init_scores.py (pruning at
initialization: random, magnitude, SNIP, GraSP, SynFlow scores), rewind.py (`RewindCallback`, `snapshot`,
`restore`).
May import: lth_tf._env, TensorFlow, tf_keras, tfmot; nothing else of lth_tf.
"""
