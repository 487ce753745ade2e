"""`python -m lth_tf.xor`: the XOR appendix's tables (lth_tf.xor.tables.main has the flags)."""
from lth_tf.xor.tables import main

raise SystemExit(main())
