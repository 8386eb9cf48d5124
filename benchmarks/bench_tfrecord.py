"""TFRecord input (issue 13, session 7 io): ours beside TensorFlow 2.21 on the same file.

One file of N tf.train.Examples shaped like the digits (64 raw uint8 pixels + an int64
label), written by our TFRecordWriter. Three figures per side, each the median of `--repeat`
passes:

- iterate: `tf_record_iterator` over the file in Python (records/s);
- pipeline: TFRecordDataset -> map(parse_single_example + decode_raw + cast) -> batch(100),
  drained with one Session.run per batch (elements/s: the TF1 input path of the
  tfrecord_dataset program);
- parse_batch: parse_example on a batch of 100 serialized Examples in one run (us per run).

TensorFlow runs the same graph (tf.compat.v1, graph mode) in the side env `.tfenv`.

    python benchmarks/bench_tfrecord.py [--records 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import TFENV_PYTHON, tfenv_available  # noqa: E402

PIPELINE = r"""
def decode(r):
    f = tf.parse_single_example(r, {"image_raw": tf.FixedLenFeature([], tf.string),
                                    "label": tf.FixedLenFeature([], tf.int64)})
    image = tf.cast(tf.decode_raw(f["image_raw"], tf.uint8), tf.float32) * (1.0 / 16)
    return image, tf.cast(f["label"], tf.int32)


def run(path, repeat):
    out = {}
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        n = sum(1 for _ in tf.python_io.tf_record_iterator(path))
        times.append(time.perf_counter() - t)
    out["iterate_records_per_s"] = n / statistics.median(times)
    g = tf.Graph()
    with g.as_default():
        it = tf.data.TFRecordDataset(path).map(decode).batch(100).make_initializable_iterator()
        nxt = it.get_next()
        recs = [r for _, r in zip(range(100), tf.python_io.tf_record_iterator(path))]
        parsed = tf.parse_example(tf.constant(recs), {
            "image_raw": tf.FixedLenFeature([], tf.string),
            "label": tf.FixedLenFeature([], tf.int64)})
        with tf.Session(graph=g) as s:
            times = []
            for _ in range(repeat):
                s.run(it.initializer)
                t = time.perf_counter()
                m = 0
                try:
                    while True:
                        m += len(s.run(nxt)[1])
                except tf.errors.OutOfRangeError:
                    pass
                times.append(time.perf_counter() - t)
            out["pipeline_elements_per_s"] = m / statistics.median(times)
            for _ in range(20):
                s.run(parsed)
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                for _ in range(50):
                    s.run(parsed)
                times.append((time.perf_counter() - t) / 50)
            out["parse_batch_us"] = statistics.median(times) * 1e6
    return out
"""

TF_MAIN = r"""
import json, statistics, sys, time
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
""" + PIPELINE + r"""
print(json.dumps(run(sys.argv[1], int(sys.argv[2]))))
"""


def write(path: str, n: int) -> None:
    import numpy as np

    import actorflow as af
    rng = np.random.default_rng(0)
    with af.python_io.TFRecordWriter(path) as w:
        for i in range(n):
            w.write(af.train.Example(features=af.train.Features(feature={
                "image_raw": af.train.Feature(bytes_list=af.train.BytesList(
                    value=[rng.integers(0, 17, 64, dtype=np.uint8).tobytes()])),
                "label": af.train.Feature(int64_list=af.train.Int64List(value=[i % 10]))})
            ).SerializeToString())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import actorflow as tf
    path = os.path.join(tempfile.mkdtemp(), "digits.tfrecord")
    write(path, args.records)
    scope: dict = {"tf": tf, "time": time, "statistics": statistics}
    exec(PIPELINE, scope)  # the same code TensorFlow runs
    ours = scope["run"](path, args.repeat)
    theirs = None
    if tfenv_available():
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("PYTHONPATH", None)
        proc = subprocess.run([str(TFENV_PYTHON), "-c", TF_MAIN, path, str(args.repeat)],
                              capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"TFRecord input, {args.records} digit-shaped Examples, median of {args.repeat}")
    print(f"{'figure':28s} {'actorflow':>12s} {'TensorFlow':>12s} {'ours/TF':>8s}")
    for key in ("iterate_records_per_s", "pipeline_elements_per_s", "parse_batch_us"):
        t = theirs[key] if theirs else float("nan")
        print(f"{key:28s} {ours[key]:12.0f} {t:12.0f} {ours[key] / t:8.2f}")


if __name__ == "__main__":
    main()
