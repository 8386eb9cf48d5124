"""actorflow benchmarks: timing helpers, NumPy floors and the TensorFlow peer runner.

Nothing in this package imports actorflow or TensorFlow at import time; TensorFlow
is only ever imported by ``benchmarks/peer_tf.py`` running inside the side
virtualenv ``.tfenv/`` (see ``benchmarks/setup_tf_env.sh``).
"""
