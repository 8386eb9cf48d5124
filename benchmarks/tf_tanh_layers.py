"""TensorFlow's side of the interleaved tanh-layer benchmark (issue 11): one long-lived
process in ``.tfenv`` that builds the same graph as `peer_tf.bench_tanh_layers` (24 x
``h = tanh(h) * 1.5 + c`` over 2M float32 in a variable, fetching one element) once, then
times runs on request, so `bench_executor.py --only-tanh-layers` alternates ours and
TensorFlow's in the same seconds without paying TensorFlow's import per round.

Protocol (text lines): it prints ``{"ready": first_element}`` once set up; each input line
``N`` runs the fetch N times and answers a JSON list of the N wall times in seconds; end of
input ends it.

    .tfenv/bin/python benchmarks/tf_tanh_layers.py N_ELEMENTS LAYERS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import peer_tf  # noqa: E402


def main() -> int:
    n, layers = int(sys.argv[1]), int(sys.argv[2])
    with peer_tf._stdout_to_stderr():
        peer_tf._import_tf("v1")
        tf, v1 = peer_tf.tf, peer_tf.v1
        x_np = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        g = v1.Graph()
        with g.as_default():
            x = v1.Variable(x_np, name="x")
            c = tf.constant(np.float32(0.25))
            h = x.read_value()
            for _ in range(layers):
                h = tf.tanh(h) * 1.5 + c
            out = h[:1]
            init = v1.global_variables_initializer()
        sess = v1.Session(graph=g, config=peer_tf.session_config(rewrites="on"))
        sess.run(init)
        first = float(sess.run(out)[0])
        sess.run(out)
    print(json.dumps({"ready": first}), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            sess.run(out)
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)
    sess.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
