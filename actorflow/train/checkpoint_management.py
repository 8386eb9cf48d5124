"""The `checkpoint` state file and finding checkpoints (TF1's checkpoint_management).

A directory of checkpoints holds a small text file, `checkpoint`, in protobuf text format:

    model_checkpoint_path: "model.ckpt-200"
    all_model_checkpoint_paths: "model.ckpt-100"
    all_model_checkpoint_paths: "model.ckpt-200"
    all_model_checkpoint_timestamps: 1796283067.87
    all_model_checkpoint_timestamps: 1796283127.12
    last_preserved_timestamp: 1796283000.0

the same file TensorFlow writes and reads. It is replaced atomically (written to a temporary
name, fsynced, renamed), and only after the checkpoint it names is complete, so a crash never
leaves `latest_checkpoint` naming a checkpoint that cannot be restored. Relative paths in it
are relative to the directory.

    af.train.latest_checkpoint("/tmp/train")      # "/tmp/train/model.ckpt-200" or None
"""

from __future__ import annotations

import glob
import os
import uuid
from dataclasses import dataclass, field

from devices.tensor_bundle import index_path

STATE_FILENAME = "checkpoint"


@dataclass
class CheckpointState:
    """TF's CheckpointState message."""

    model_checkpoint_path: str = ""
    all_model_checkpoint_paths: list[str] = field(default_factory=list)
    all_model_checkpoint_timestamps: list[float] = field(default_factory=list)
    last_preserved_timestamp: float = 0.0


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) < 2 or s[0] not in "\"'" or s[-1] != s[0]:
        raise ValueError(f"not a quoted string: {s}")
    return s[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


def format_state(state: CheckpointState) -> str:
    lines = [f"model_checkpoint_path: {_quote(state.model_checkpoint_path)}"]
    lines += [f"all_model_checkpoint_paths: {_quote(p)}"
              for p in state.all_model_checkpoint_paths]
    lines += [f"all_model_checkpoint_timestamps: {t!r}"
              for t in state.all_model_checkpoint_timestamps]
    if state.last_preserved_timestamp:
        lines.append(f"last_preserved_timestamp: {state.last_preserved_timestamp!r}")
    return "\n".join(lines) + "\n"


def parse_state(text: str, filename: str = STATE_FILENAME) -> CheckpointState:
    state = CheckpointState()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        try:
            if not sep:
                raise ValueError("no ':'")
            key = key.strip()
            if key == "model_checkpoint_path":
                state.model_checkpoint_path = _unquote(value)
            elif key == "all_model_checkpoint_paths":
                state.all_model_checkpoint_paths.append(_unquote(value))
            elif key == "all_model_checkpoint_timestamps":
                state.all_model_checkpoint_timestamps.append(float(value))
            elif key == "last_preserved_timestamp":
                state.last_preserved_timestamp = float(value)
            else:
                raise ValueError(f"unknown field '{key}'")
        except ValueError as e:
            raise ValueError(f"{filename}:{n}: cannot parse checkpoint state ({e}): "
                             f"{line!r}") from None
    return state


def _state_path(save_dir: str, latest_filename: str | None) -> str:
    return os.path.join(save_dir, latest_filename or STATE_FILENAME)


def update_checkpoint_state(save_dir: str, model_checkpoint_path: str,
                            all_model_checkpoint_paths: list[str] | None = None,
                            latest_filename: str | None = None,
                            all_model_checkpoint_timestamps: list[float] | None = None,
                            last_preserved_timestamp: float | None = None) -> None:
    """Atomically replace `save_dir/checkpoint` (paths inside `save_dir` stored relative)."""
    def rel(p: str) -> str:
        if os.path.isabs(p) and os.path.dirname(p) == os.path.abspath(save_dir):
            return os.path.basename(p)
        return p

    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)
    state = CheckpointState(rel(model_checkpoint_path), [rel(p) for p in paths],
                            list(all_model_checkpoint_timestamps or []),
                            last_preserved_timestamp or 0.0)
    os.makedirs(save_dir or ".", exist_ok=True)
    path = _state_path(save_dir, latest_filename)
    tmp = f"{path}.tmp{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        f.write(format_state(state))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(save_dir or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some file systems cannot fsync a directory
        pass


def get_checkpoint_state(checkpoint_dir: str,
                         latest_filename: str | None = None) -> CheckpointState | None:
    """The directory's CheckpointState (paths made absolute), or None if it has none."""
    path = _state_path(checkpoint_dir, latest_filename)
    try:
        with open(path) as f:
            state = parse_state(f.read(), path)
    except FileNotFoundError:
        return None
    if not state.model_checkpoint_path:
        return None

    def absolute(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(checkpoint_dir, p)

    state.model_checkpoint_path = absolute(state.model_checkpoint_path)
    state.all_model_checkpoint_paths = [absolute(p) for p in state.all_model_checkpoint_paths]
    return state


def checkpoint_exists(checkpoint_prefix: str) -> bool:
    """True if a complete V2 checkpoint (its index written last) is at the prefix."""
    return os.path.isfile(index_path(checkpoint_prefix))


def latest_checkpoint(checkpoint_dir: str, latest_filename: str | None = None) -> str | None:
    """The newest checkpoint's prefix recorded in `checkpoint_dir`, or None."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state and checkpoint_exists(state.model_checkpoint_path):
        return state.model_checkpoint_path
    return None


def get_checkpoint_mtimes(checkpoint_prefixes: list[str]) -> list[float]:
    return [os.stat(index_path(p)).st_mtime for p in checkpoint_prefixes
            if checkpoint_exists(p)]


def remove_checkpoint(checkpoint_prefix: str) -> None:
    """Delete a checkpoint's files (index first, so a half-deleted one is never restorable)."""
    for path in [index_path(checkpoint_prefix), *glob.glob(glob.escape(checkpoint_prefix)
                                                           + ".data-?????-of-?????"),
                 checkpoint_prefix + ".meta"]:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
