"""Kernels that save and restore tensors in TensorFlow's V2 checkpoint format.

They run on the device that holds the variables (a parameter-server task's CPU), so tensor
bytes go from that task's memory to its disk and back, never through the client:

    SaveV2(prefix, *tensors)  attrs tensor_names, shape_and_slices, shard, num_shards, tmp_suffix
        writes one bundle of its tensors at  <prefix><tmp_suffix>/part-<shard>-of-<num_shards>
        (a temporary directory next to the checkpoint), data first, its index last.
    MergeV2Checkpoints(prefix)  attrs num_shards, tmp_suffix
        runs once, after every SaveV2 of the save (control inputs): reads the parts' indexes,
        renames each part's data file to <prefix>.data-<k>-of-<n>, writes the merged
        <prefix>.index (through a temporary name), and removes the temporary directory.
    RestoreV2(prefix) -> tensors  attrs tensor_names, shape_and_slices, dtypes
        opens <prefix>.index and reads only the byte ranges of the tensors it restores,
        checksums verified (DataLossError on a mismatch).
    RestoreVariablesV2(prefix, *handles)  attrs tensor_names, shape_and_slices
        RestoreV2 fused with the assignments (what the Saver uses), never a second copy.
        All or nothing: first, on a worker thread, every stored piece is checksummed (a
        DataLossError there changes no variable). An initialized variable (of at most
        IN_PLACE_MAX_BYTES) whose stored tensor (or slice) has its shape is checksummed
        without keeping the bytes, then copied straight into its own buffer, one variable at
        a time on the device's loop (no kernel sees it half-written; its pages are already
        faulted in, a new buffer's are not, and first touches cost about as much as the
        copy). The others (uninitialized: a new task; larger; or stored in other pieces) are
        read into new buffers on the worker thread, verified, and adopted at the end. The
        data files stay open from the check to the copy, so the copy reads the bytes that
        were checked even if a file is replaced meanwhile.

The prefix is a uint8 tensor holding the path's UTF-8 bytes (actorflow has no string tensors
yet; the path is fed per save, so one graph serves every step's file). `shape_and_slices` uses
TensorFlow's spelling: "" for a whole tensor, or "full_shape start,len:start,len" (len "-" for
a whole dimension, as in "10 4 0,5:-") for one slice of a partitioned variable.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from devices import tensor_bundle as tb
from devices.errors import InvalidArgumentError
from devices.kernels.registry import KernelContext, register_kernel


def _path(prefix: Any) -> str:
    arr = np.asarray(prefix)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise InvalidArgumentError(f"a checkpoint prefix must be a 1-D uint8 tensor of the "
                                   f"path's bytes, got {arr.dtype} of shape {arr.shape}")
    return arr.tobytes().decode()


def parse_slice_spec(spec: str, name: str) -> tuple[list[int], list[tuple[int, int]]] | None:
    """TF's "full_shape start,len:start,len" -> (full_shape, extents); None for ""."""
    if not spec:
        return None
    try:
        *dims, slices = spec.split(" ")
        full = [int(d) for d in dims]
        extents = []
        for d, part in enumerate(slices.split(":")):
            if part == "-":
                extents.append((0, full[d]))
            else:
                s, n = part.split(",")
                extents.append((int(s), full[d] if n == "-" else int(n)))
        if len(extents) != len(full):
            raise ValueError("rank mismatch")
    except (ValueError, IndexError):
        raise InvalidArgumentError(f"bad shape_and_slices '{spec}' for tensor '{name}'; write "
                                   f"'full_shape start,len:start,len' (e.g. '10 4 0,5:-')"
                                   ) from None
    return full, extents


def part_prefix(prefix: str, tmp_suffix: str, shard: int, num_shards: int) -> str:
    return os.path.join(prefix + tmp_suffix, f"part-{shard:05d}-of-{num_shards:05d}")


def _on_a_thread(k: KernelContext) -> float:
    """File I/O: always on a worker thread, so the device's loop (heartbeats, other steps)
    keeps running while gigabytes go to or come from disk."""
    return 1e12


@register_kernel("SaveV2", device_types=("CPU",), stateful=True, cost=_on_a_thread)
def _save(k: KernelContext) -> Any:
    names: list[str] = list(k.attrs["tensor_names"])
    specs = [parse_slice_spec(s, n)
             for s, n in zip(k.attrs["shape_and_slices"], names, strict=True)]
    shard, num_shards = int(k.attrs.get("shard", 0)), int(k.attrs.get("num_shards", 1))
    tmp_suffix = k.attrs["tmp_suffix"]

    def compute(prefix: Any, *tensors: Any) -> tuple[()]:
        if len(tensors) != len(names):
            raise InvalidArgumentError(f"SaveV2 got {len(tensors)} tensors for {len(names)} "
                                       f"names", node=k.name)
        base = part_prefix(_path(prefix), tmp_suffix, shard, num_shards)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        items: list[tuple[str | bytes, np.ndarray]] = []
        full: dict[bytes, bytes] = {}
        sliced: dict[str, tuple[Any, list[int], list]] = {}
        for name, spec, t in zip(names, specs, tensors, strict=True):
            arr = np.asarray(t)
            if spec is None:
                items.append((name, arr))
                continue
            shape, extents = spec
            if [n for _, n in extents] != list(arr.shape):
                raise InvalidArgumentError(f"slice '{name}' has shape {arr.shape} but its spec "
                                           f"says {extents}", node=k.name)
            sliced.setdefault(name, (arr.dtype, shape, []))[2].append(extents)
            items.append((tb.slice_key(name, extents), arr))
        entries = tb.write_data_file(tb.data_path(base, 0, 1), items)
        for name, (dtype, shape, slices) in sliced.items():
            full[name.encode()] = tb.full_entry(dtype, shape, slices)
        # the part's index is temporary (the merge reads it and writes the real one, which
        # is fsynced): no fsync here, one journal commit fewer per shard
        tb.write_index(tb.index_path(base), tb.merge_entries([entries, full]), 1, fsync=False)
        return ()
    return compute


@register_kernel("MergeV2Checkpoints", device_types=("CPU",), stateful=True,
                 cost=_on_a_thread)
def _merge(k: KernelContext) -> Any:
    num_shards = int(k.attrs["num_shards"])
    tmp_suffix = k.attrs["tmp_suffix"]

    def compute(prefix: Any) -> tuple[()]:
        path = _path(prefix)
        parts = []
        for shard in range(num_shards):
            base = part_prefix(path, tmp_suffix, shard, num_shards)
            reader = tb.BundleReader(base)
            part = {}
            for key, entry in reader.entries.items():
                if not entry.slices:
                    entry.shard_id = shard
                part[key] = entry.SerializeToString()
            parts.append(part)
        merged = tb.merge_entries(parts)
        for shard in range(num_shards):
            base = part_prefix(path, tmp_suffix, shard, num_shards)
            os.replace(tb.data_path(base, 0, 1), tb.data_path(path, shard, num_shards))
        tb.write_index(tb.index_path(path), merged, num_shards)
        shutil.rmtree(path + tmp_suffix, ignore_errors=True)
        return ()
    return compute


@register_kernel("RestoreV2", device_types=("CPU",), stateful=True, cost=_on_a_thread)
def _restore(k: KernelContext) -> Any:
    names: list[str] = list(k.attrs["tensor_names"])
    specs = [parse_slice_spec(s, n)
             for s, n in zip(k.attrs["shape_and_slices"], names, strict=True)]
    want = [d.np for d in k.out_dtypes]

    def compute(prefix: Any) -> tuple[Any, ...]:
        reader = tb.BundleReader(_path(prefix))
        out = []
        for name, spec, dt in zip(names, specs, want, strict=True):
            have = reader.dtype(name)
            if have != dt:
                raise InvalidArgumentError(
                    f"tensor '{name}' in checkpoint '{reader.prefix}' is {have}, but the "
                    f"variable restored from it is {dt}", node=k.name)
            arr = reader.read(name, None if spec is None else spec[1])
            out.append(arr)
        return tuple(out)
    return compute


@register_kernel("RestoreVariablesV2", device_types=("CPU",), stateful=True, is_async=True)
def _restore_variables(k: KernelContext) -> Any:
    names: list[str] = list(k.attrs["tensor_names"])
    specs = [parse_slice_spec(s, n)
             for s, n in zip(k.attrs["shape_and_slices"], names, strict=True)]
    extents = [None if spec is None else spec[1] for spec in specs]
    device = k.device

    def open_and_check(prefix: Any, dtypes: list[np.dtype], var_names: list[str]
                       ) -> tb.BundleReader:
        reader = tb.BundleReader(_path(prefix))
        for name, dt, vname in zip(names, dtypes, var_names, strict=True):
            have = reader.dtype(name)
            if have != dt:
                raise InvalidArgumentError(
                    f"tensor '{name}' in checkpoint '{reader.prefix}' is {have}, but variable "
                    f"'{vname}' is {dt}", node=k.name)
        return reader

    def verify_and_read_fresh(reader: tb.BundleReader, in_place: list[int],
                              fresh: list[int]) -> list[np.ndarray]:
        for i in in_place:  # checked here, copied on the loop once everything is sound
            reader.verify(names[i], extents[i])
        return [reader.read(names[i], extents[i]) for i in fresh]

    async def compute(ctx: Any, prefix: Any, *handles: Any) -> tuple[()]:
        reader = await device.run_in_thread(open_and_check, prefix,
                                            [h.dtype for h in handles],
                                            [h.name for h in handles])
        with reader.pinned():  # the copies read the very bytes that were verified
            fits = [_fits(h, reader, names[i], extents[i]) for i, h in enumerate(handles)]
            in_place = [i for i, f in enumerate(fits) if f]
            fresh = [i for i, f in enumerate(fits) if not f]
            # off the loop: every piece read in place is checksummed (nothing kept), every
            # other variable read into a new buffer and checksummed; a DataLossError here
            # leaves every variable as it was (all or nothing)
            values = await device.run_in_thread(verify_and_read_fresh, reader, in_place, fresh)
            for i in in_place:
                _read_in_place(reader, handles[i], names[i], extents[i])
        for i, value in zip(fresh, values, strict=True):
            handles[i].assign(value)  # a fresh, owned buffer: adopted, not copied
        return ()

    compute.poll = lambda ctx, *args: None  # type: ignore[attr-defined]
    return compute


# A variable copied in place holds the device's loop for its copy (heartbeats included):
# bigger ones are read on a worker thread into a new buffer instead (~0.05 s at 5 GB/s).
IN_PLACE_MAX_BYTES = 256 << 20


def _fits(h: Any, reader: tb.BundleReader, name: str, extents: Any) -> bool:
    """Whether variable `h` has a host buffer that the one stored piece of its tensor can be
    read straight into."""
    value = h.value
    if not (type(value) is np.ndarray and value.flags.c_contiguous
            and 0 < value.nbytes <= IN_PLACE_MAX_BYTES and value.dtype == h.dtype):
        return False
    key = reader.piece(name, extents)
    return key is not None and list(value.shape) == [
        d.size for d in reader.entries[key].shape.dim]


def _read_in_place(reader: tb.BundleReader, h: Any, name: str, extents: Any) -> None:
    """Copy tensor `name`, already verified, into variable `h`'s own buffer, on the device's
    loop: no kernel sees the variable half-written (as TF's Assign under the variable's
    lock), and the buffer is already faulted in (a new one is not: the kernel zeroes every
    page of it on first touch, which costs as much as the copy itself). `writable()` counts
    the write and hands back a private buffer when someone holds the current one (a snapshot
    in flight). Only a data file truncated since it was verified can fail here: the variable
    is then left uninitialized, never half restored."""
    buf = h.writable()
    try:
        done = reader.read_into(name, buf, extents, verified=True)
    except Exception:
        h.value = None  # its bytes are partly the checkpoint's: no one may read them
        raise
    if not done:  # its shape changed while the others were verified: a new buffer
        h.assign(reader.read(name, extents))
