"""``af.gfile``: TF1's file helpers on the local file system (``tf.gfile``).

    if not af.gfile.Exists(log_dir):
        af.gfile.MakeDirs(log_dir)
    with af.gfile.GFile(path, "w") as f:
        f.write(text)

Missing files raise `NotFoundError`, as TensorFlow's file system does.
"""

from __future__ import annotations

import glob as _glob
import os
import shutil
from typing import IO, Any

from devices.errors import AlreadyExistsError, NotFoundError

__all__ = ["Exists", "MakeDirs", "Mkdir", "DeleteRecursively", "Remove", "Rename", "Copy",
           "GFile", "Open", "FastGFile", "Glob", "ListDirectory", "IsDirectory", "Walk",
           "Stat"]


def Exists(filename: str) -> bool:  # noqa: N802
    return os.path.exists(filename)


def IsDirectory(dirname: str) -> bool:  # noqa: N802
    return os.path.isdir(dirname)


def MakeDirs(dirname: str) -> None:  # noqa: N802
    """Create `dirname` and its parents; no error if it exists."""
    os.makedirs(dirname, exist_ok=True)


def Mkdir(dirname: str) -> None:  # noqa: N802
    try:
        os.mkdir(dirname)
    except FileExistsError:
        raise AlreadyExistsError(f"directory {dirname!r} already exists") from None
    except FileNotFoundError:
        raise NotFoundError(f"parent of {dirname!r} does not exist; use MakeDirs") from None


def DeleteRecursively(dirname: str) -> None:  # noqa: N802
    if not os.path.exists(dirname):
        raise NotFoundError(f"{dirname!r} does not exist")
    if os.path.isdir(dirname):
        shutil.rmtree(dirname)
    else:
        os.remove(dirname)


def Remove(filename: str) -> None:  # noqa: N802
    try:
        os.remove(filename)
    except FileNotFoundError:
        raise NotFoundError(f"{filename!r} does not exist") from None


def Rename(oldname: str, newname: str, overwrite: bool = False) -> None:  # noqa: N802
    if os.path.exists(newname) and not overwrite:
        raise AlreadyExistsError(f"{newname!r} exists; pass overwrite=True to replace it")
    os.replace(oldname, newname)


def Copy(oldpath: str, newpath: str, overwrite: bool = False) -> None:  # noqa: N802
    if os.path.exists(newpath) and not overwrite:
        raise AlreadyExistsError(f"{newpath!r} exists; pass overwrite=True to replace it")
    shutil.copyfile(oldpath, newpath)


def Glob(filename: str) -> list[str]:  # noqa: N802
    return sorted(_glob.glob(filename))


def ListDirectory(dirname: str) -> list[str]:  # noqa: N802
    if not os.path.isdir(dirname):
        raise NotFoundError(f"directory {dirname!r} does not exist")
    return sorted(os.listdir(dirname))


def Walk(top: str, in_order: bool = True) -> Any:  # noqa: N802
    yield from os.walk(top, topdown=in_order)


def Stat(filename: str) -> os.stat_result:  # noqa: N802
    try:
        return os.stat(filename)
    except FileNotFoundError:
        raise NotFoundError(f"{filename!r} does not exist") from None


class GFile:
    """A file object (``with GFile(path, "rb") as f``); text modes read and write str."""

    def __init__(self, name: str, mode: str = "r"):
        self.name = name
        self.mode = mode
        try:
            self._f: IO[Any] = open(name, mode)  # noqa: SIM115 - closed by close()/__exit__
        except FileNotFoundError:
            raise NotFoundError(f"{name!r} does not exist") from None

    def __enter__(self) -> GFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Any:
        return iter(self._f)

    def read(self, n: int = -1) -> Any:
        return self._f.read(n)

    def readline(self) -> Any:
        return self._f.readline()

    def readlines(self) -> list[Any]:
        return self._f.readlines()

    def write(self, data: Any) -> None:
        self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def seek(self, offset: int, whence: int = 0) -> None:
        self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def size(self) -> int:
        return os.path.getsize(self.name)

    def close(self) -> None:
        self._f.close()


Open = GFile
FastGFile = GFile
