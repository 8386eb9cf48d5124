"""Writing SavedModels: a directory with `saved_model.pb` (TensorFlow's SavedModel message: one
MetaGraphDef per tag set, with its signatures) and `variables/variables.{index,data-*}` (a V2
checkpoint), as TF1's tf.saved_model.builder.SavedModelBuilder and simple_save write them.

    builder = af.saved_model.builder.SavedModelBuilder(export_dir)
    builder.add_meta_graph_and_variables(sess, [af.saved_model.tag_constants.SERVING],
                                         signature_def_map={"serving_default": sig})
    builder.save()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from actorflow.graph import Graph, get_default_graph
from actorflow.meta_graph import export_meta_graph, protos
from actorflow.saved_model import signature_constants, tag_constants
from actorflow.saved_model.signature_def_utils import predict_signature_def
from actorflow.train.saver import Saver

MAIN_OP_KEY = "saved_model_main_op"
LEGACY_INIT_OP_KEY = "legacy_init_op"
SAVED_MODEL_FILENAME_PB = "saved_model.pb"
SAVED_MODEL_FILENAME_PBTXT = "saved_model.pbtxt"
VARIABLES_DIRECTORY = "variables"
VARIABLES_FILENAME = "variables"


class SavedModelBuilder:
    """Builds a SavedModel in `export_dir` (which must not exist yet, or be empty)."""

    def __init__(self, export_dir: str):
        if os.path.isdir(export_dir) and os.listdir(export_dir):
            raise AssertionError(
                f"Export directory already exists, and isn't empty. Please choose a different "
                f"export directory, or delete all the contents of the specified directory: "
                f"{export_dir}")
        os.makedirs(export_dir, exist_ok=True)
        self._export_dir = export_dir
        self._saved_model = protos()["SavedModel"](saved_model_schema_version=1)
        self._has_saved_variables = False

    def _meta_graph(self, graph: Graph, tags: Sequence[str], signature_def_map: Any,
                    saver: Saver, main_op: Any, clear_devices: bool) -> None:
        if isinstance(tags, str):
            raise ValueError(f"tags must be a list of strings such as [{tags!r}], not a string")
        for key, sig in (signature_def_map or {}).items():
            if not sig.inputs and not sig.outputs:
                raise ValueError(f"signature '{key}' names no inputs and no outputs")
        if main_op is not None:
            graph.get_collection_ref(MAIN_OP_KEY)[:] = [main_op]
        meta = export_meta_graph(graph=graph, saver=saver, clear_devices=clear_devices)
        meta.meta_info_def.tags.extend(tags)
        for key, sig in (signature_def_map or {}).items():
            meta.signature_def[key].CopyFrom(sig)
        self._saved_model.meta_graphs.append(meta)

    def add_meta_graph_and_variables(self, sess: Any, tags: Sequence[str],
                                     signature_def_map: dict[str, Any] | None = None,
                                     assets_collection: Any = None, legacy_init_op: Any = None,
                                     clear_devices: bool = False, main_op: Any = None,
                                     strip_default_attrs: bool = False, saver: Saver | None = None,
                                     init_op: Any = None) -> None:
        """Save `sess`'s variables and its graph under `tags` (the first MetaGraph)."""
        if self._has_saved_variables:
            raise AssertionError("Graph state including variables and assets has already been "
                                 "saved. Please invoke `add_meta_graph()` instead.")
        with sess.graph.as_default():
            saver = saver or Saver(sharded=True, allow_empty=True)
            var_dir = os.path.join(self._export_dir, VARIABLES_DIRECTORY)
            os.makedirs(var_dir, exist_ok=True)
            saver.save(sess, os.path.join(var_dir, VARIABLES_FILENAME), write_meta_graph=False,
                       write_state=False)
            self._meta_graph(sess.graph, tags, signature_def_map, saver,
                             main_op if main_op is not None else legacy_init_op, clear_devices)
        self._has_saved_variables = True

    def add_meta_graph(self, tags: Sequence[str], signature_def_map: dict[str, Any] | None = None,
                       assets_collection: Any = None, legacy_init_op: Any = None,
                       clear_devices: bool = False, main_op: Any = None,
                       strip_default_attrs: bool = False, saver: Saver | None = None) -> None:
        """Add the default graph under more `tags`, sharing the variables already saved."""
        if not self._has_saved_variables:
            raise AssertionError("Graph state including variables and assets has not been "
                                 "saved yet. Please invoke `add_meta_graph_and_variables()` "
                                 "first.")
        g = get_default_graph()
        self._meta_graph(g, tags, signature_def_map, saver or Saver(sharded=True,
                                                                    allow_empty=True),
                         main_op if main_op is not None else legacy_init_op, clear_devices)

    def save(self, as_text: bool = False) -> bytes:
        """Write saved_model.pb (or .pbtxt); return its path."""
        from actorflow.graph_io import write_message
        name = SAVED_MODEL_FILENAME_PBTXT if as_text else SAVED_MODEL_FILENAME_PB
        path = os.path.join(self._export_dir, name)
        write_message(path, self._saved_model, as_text)
        return path.encode()


Builder = SavedModelBuilder


def simple_save(session: Any, export_dir: str, inputs: dict[str, Any], outputs: dict[str, Any],
                legacy_init_op: Any = None) -> None:
    """A serving SavedModel of `session`: one Predict signature under "serving_default"."""
    sigs = {signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
            predict_signature_def(inputs, outputs)}
    b = SavedModelBuilder(export_dir)
    b.add_meta_graph_and_variables(session, [tag_constants.SERVING], signature_def_map=sigs,
                                   main_op=legacy_init_op, clear_devices=True)
    b.save()
