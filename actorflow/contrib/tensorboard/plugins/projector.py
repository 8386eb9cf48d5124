"""``af.contrib.tensorboard.plugins.projector``: tell TensorBoard's embedding projector which
checkpointed tensors to show, as TF1's word2vec tutorials do.

    config = projector.ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = embeddings.name
    emb.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(writer, config)   # writes <logdir>/projector_config.pbtxt

The file is the ProjectorConfig message in protobuf text format, which TensorBoard's projector
plugin reads from the log directory (next to the checkpoint).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProjectorConfig", "EmbeddingInfo", "SpriteMetadata", "visualize_embeddings"]


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class SpriteMetadata:
    image_path: str = ""
    single_image_dim: list[int] = field(default_factory=list)

    def _text(self, indent: str) -> list[str]:
        out = [f"{indent}image_path: {_q(self.image_path)}"] if self.image_path else []
        out += [f"{indent}single_image_dim: {int(d)}" for d in self.single_image_dim]
        return out


@dataclass
class EmbeddingInfo:
    tensor_name: str = ""
    metadata_path: str = ""
    bookmarks_path: str = ""
    tensor_shape: list[int] = field(default_factory=list)
    sprite: SpriteMetadata = field(default_factory=SpriteMetadata)
    tensor_path: str = ""

    def _text(self) -> list[str]:
        out = []
        for key in ("tensor_name", "metadata_path", "bookmarks_path", "tensor_path"):
            v = getattr(self, key)
            if v:
                out.append(f"  {key}: {_q(v)}")
        out += [f"  tensor_shape: {int(d)}" for d in self.tensor_shape]
        sprite = self.sprite._text("    ")
        if sprite:
            out += ["  sprite {", *sprite, "  }"]
        return out


class _Repeated(list):
    def add(self) -> EmbeddingInfo:
        e = EmbeddingInfo()
        self.append(e)
        return e


class ProjectorConfig:
    def __init__(self, model_checkpoint_path: str = "", model_checkpoint_dir: str = ""):
        self.model_checkpoint_path = model_checkpoint_path
        self.model_checkpoint_dir = model_checkpoint_dir
        self.embeddings: _Repeated = _Repeated()

    def to_text(self) -> str:
        """The message in protobuf text format."""
        lines = []
        if self.model_checkpoint_path:
            lines.append(f"model_checkpoint_path: {_q(self.model_checkpoint_path)}")
        if self.model_checkpoint_dir:
            lines.append(f"model_checkpoint_dir: {_q(self.model_checkpoint_dir)}")
        for e in self.embeddings:
            lines += ["embeddings {", *e._text(), "}"]
        return "\n".join(lines) + "\n"


def visualize_embeddings(summary_writer: Any, config: ProjectorConfig) -> str:
    """Write `config` as projector_config.pbtxt in the writer's log directory (a writer with
    get_logdir(), or a directory path); returns the file's path."""
    if isinstance(summary_writer, str):
        logdir = summary_writer
    else:
        get = getattr(summary_writer, "get_logdir", None)
        logdir = get() if get is not None else getattr(summary_writer, "logdir", None)
        if logdir is None:
            raise TypeError(f"visualize_embeddings needs a summary writer with get_logdir() "
                            f"or a directory, got {summary_writer!r}")
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, "projector_config.pbtxt")
    with open(path, "w") as f:
        f.write(config.to_text())
    return path
