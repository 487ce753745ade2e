"""Reading results directories: tables and figures (no TensorFlow: reports start fast, even while trials train).

Lives here: results.py (a results directory as one table of finished rounds; curves, surviving initial weights),
tables.py (the summary over trials and its Markdown), figures.py (matplotlib figures on an Agg canvas, no
pyplot), report_convergence.py (arXiv v1 footnote 1's convergence beside the early stop), instability_report.py
(figures and a table from an instability sweep), punchline.py (the ticket against its control at the
sparsest level, in one line). `lth_tf.report` puts them together.
May import: lth_tf.training.convergence (numpy only), lth_tf.experiment.files (atomic writes, damaged-file errors;
numpy only), numpy, pandas, matplotlib; no TensorFlow.
"""
