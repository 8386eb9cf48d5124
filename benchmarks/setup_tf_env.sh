#!/usr/bin/env bash
# Create (or refresh) the side virtualenv .tfenv/ at the repository root that
# holds TensorFlow for the peer-comparison benchmarks.  TensorFlow is never a
# dependency of actorflow itself; only benchmarks/peer_tf.py runs inside .tfenv.
#
# Idempotent: an existing env with a working TensorFlow 2.21 is left alone.
# Usage: bash benchmarks/setup_tf_env.sh   (env var PYTHON overrides python3.11)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV="$ROOT/.tfenv"
PY="${PYTHON:-python3.11}"

if [[ ! -x "$ENV/bin/python" ]]; then
    echo "creating $ENV with $PY"
    "$PY" -m venv "$ENV"
fi

if "$ENV/bin/python" -c 'import sys, tensorflow as tf, numpy; sys.exit(0 if tf.__version__.startswith("2.21.") else 1)' 2>/dev/null; then
    echo "TensorFlow already installed in $ENV"
else
    "$ENV/bin/python" -m pip install --upgrade pip
    "$ENV/bin/python" -m pip install "tensorflow-cpu==2.21.*" numpy
fi
# tf.compat.v1.layers and nn.rnn_cell need the Keras 2 package (benchmarks/audit_ops.py)
if ! "$ENV/bin/python" -c 'import tf_keras' 2>/dev/null; then
    "$ENV/bin/python" -m pip install "tf-keras==2.21.*"
fi

"$ENV/bin/python" -c 'import tensorflow as tf, numpy as np; print("tensorflow", tf.__version__, "numpy", np.__version__)'
