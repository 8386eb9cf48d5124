"""Loading SavedModels into a session (TF1's tf.saved_model.loader): the MetaGraph whose tags
match is imported into the session's graph, its variables restored, its main op run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from actorflow.meta_graph import import_meta_graph, protos
from actorflow.saved_model import builder as b


def _read(export_dir: str) -> Any:
    from actorflow.graph_io import parse_message
    for name in (b.SAVED_MODEL_FILENAME_PB, b.SAVED_MODEL_FILENAME_PBTXT):
        path = os.path.join(export_dir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                return parse_message(f.read(), protos()["SavedModel"], path)
    raise OSError(f"SavedModel file does not exist at: {export_dir}/{{"
                  f"{b.SAVED_MODEL_FILENAME_PBTXT}|{b.SAVED_MODEL_FILENAME_PB}}}")


def maybe_saved_model_directory(export_dir: str) -> bool:
    """Whether `export_dir` holds a SavedModel."""
    return any(os.path.exists(os.path.join(export_dir, n))
               for n in (b.SAVED_MODEL_FILENAME_PB, b.SAVED_MODEL_FILENAME_PBTXT))


def load(sess: Any, tags: Sequence[str], export_dir: str, import_scope: str | None = None,
         **saver_kwargs: Any) -> Any:
    """Load the MetaGraph of `export_dir` tagged exactly `tags` into `sess`; return it (its
    `signature_def` names the model's inputs and outputs)."""
    saved = _read(export_dir)
    want = set(tags)
    meta = next((m for m in saved.meta_graphs if set(m.meta_info_def.tags) == want), None)
    if meta is None:
        have = [list(m.meta_info_def.tags) for m in saved.meta_graphs]
        raise RuntimeError(f"MetaGraphDef associated with tags {sorted(want)} could not be found "
                           f"in SavedModel {export_dir}; it has the tag sets {have}")
    with sess.graph.as_default():
        saver = import_meta_graph(meta, import_scope=import_scope, **saver_kwargs)
        if saver is not None:
            saver.restore(sess, os.path.join(export_dir, b.VARIABLES_DIRECTORY,
                                             b.VARIABLES_FILENAME))
        g = sess.graph
        prefix = import_scope.rstrip("/") + "/" if import_scope else ""
        ops = [op for op in g.get_collection(b.MAIN_OP_KEY) + g.get_collection(
            b.LEGACY_INIT_OP_KEY) if op.name.startswith(prefix)]
        if ops:
            sess.run(ops[:1])
    return meta
