"""Shared-memory payloads: a pool reuses its segments once freed and refuses past its limit,
the reader checks every field of a descriptor before it maps or copies anything, and
segments of dead processes are reaped. Real /dev/shm segments, cleaned up."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from devices.errors import InvalidArgumentError, NotFoundError
from transport import shm
from transport.codec import DEFAULT_LIMITS
from transport.shm import SHM_DIR, SegmentPool

pytestmark = pytest.mark.skipif(not shm.available(), reason="no /dev/shm on this machine")


def _mine() -> list[str]:
    return sorted(f for f in os.listdir(shm.SHM_DIR) if f.startswith(f"af{os.getpid()}x"))


def test_put_take_free_reuse_and_close() -> None:
    rng = np.random.default_rng()
    pool, reader = shm.SegmentPool(max_bytes=4 << 20), shm.SegmentReader()
    try:
        a = rng.standard_normal((300, 500)).astype(np.float32)  # 600 KB
        d1 = pool.put(a)
        assert d1 is not None and d1[1:] == ["float32", [300, 500], a.nbytes]
        out = reader.take(d1, DEFAULT_LIMITS, np.empty)
        np.testing.assert_array_equal(out, a)
        b = rng.integers(0, 9, (1000,), dtype=np.int64)
        d2 = pool.put(b)  # the first segment is still busy: a second one
        assert d2[0] != d1[0] and pool.busy == 2
        assert pool.free(d1[0]) and not pool.free(d1[0])  # freed once
        d3 = pool.put(np.ascontiguousarray(a[::-1]))  # reuses the freed segment
        assert d3[0] == d1[0]
        np.testing.assert_array_equal(reader.take(d3, DEFAULT_LIMITS, np.empty), a[::-1])
        assert len(_mine()) == 2
        big = np.zeros(7 << 19, np.uint8)  # 3.5 MiB: with the two segments, over 4 MiB
        assert pool.put(big) is None and pool.fallbacks == 1  # past max_bytes: use the socket
        assert pool.put(np.array(["x"], dtype=object)) is None  # not a wire dtype
    finally:
        pool.close()
        reader.close()
    assert _mine() == []


def test_the_reader_checks_a_descriptor_before_using_it() -> None:
    pool, reader = shm.SegmentPool(), shm.SegmentReader()
    try:
        d = pool.put(np.arange(10, dtype=np.float64))
        name = d[0]
        bad = [
            ("not a list", "is not \\[name"),
            ([name, "float64", [10]], "is not \\[name"),
            (["../etc/passwd", "float64", [10], 80], "not one actorflow makes"),
            ([name, "object", [10], 80], "not allowed on the wire"),
            ([name, "float64", [-1], -8], "not a list of at most"),
            ([name, "float64", [10], 81], "needs 80 bytes"),
            ([name, "float64", [1 << 20], 8 << 20], "holds 65536 bytes"),
        ]
        for desc, match in bad:
            with pytest.raises(InvalidArgumentError, match=match):
                reader.take(desc, DEFAULT_LIMITS, np.empty)
        with pytest.raises(NotFoundError, match="is not there"):
            reader.take([f"af{os.getpid()}x" + "0" * 32, "float64", [10], 80],
                        DEFAULT_LIMITS, np.empty)
        np.testing.assert_array_equal(reader.take(d, DEFAULT_LIMITS, np.empty), np.arange(10.0))
    finally:
        pool.close()
        reader.close()


def test_segments_of_dead_processes_are_reaped() -> None:
    code = ("import numpy as np; from transport import shm; p = shm.SegmentPool(); "
            "print(p.put(np.ones(8))[0])")  # exits without closing its pool
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    name = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert os.path.exists(os.path.join(shm.SHM_DIR, name))
    assert shm.reap_orphans() >= 1
    assert not os.path.exists(os.path.join(shm.SHM_DIR, name))


def test_a_full_shm_directory_means_the_socket_not_a_crash(monkeypatch) -> None:
    """Reserving a segment's pages fails cleanly (ENOSPC), the half-made segment is removed,
    and put() says "use the socket"."""
    import errno

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    pool = shm.SegmentPool()
    try:
        assert pool.put(np.ones(1000)) is None
        assert _mine() == []
    finally:
        pool.close()


def test_the_reader_unmaps_beyond_its_byte_budget() -> None:
    pool, reader = shm.SegmentPool(), shm.SegmentReader(max_bytes=3 << 16)
    try:
        descs = [pool.put(np.full(1000, float(i))) for i in range(5)]  # a 64 KiB segment each
        for i, d in enumerate(descs):
            np.testing.assert_array_equal(reader.take(d, DEFAULT_LIMITS, np.empty),
                                          np.full(1000, float(i)))
        assert len(reader._open) == 3
        np.testing.assert_array_equal(reader.take(descs[0], DEFAULT_LIMITS, np.empty),
                                      np.zeros(1000))  # unmapped, then mapped again
    finally:
        pool.close()
        reader.close()


def test_segments_are_private_and_unguessable() -> None:
    pool = SegmentPool(max_bytes=1 << 20)
    try:
        names = [pool.put(np.arange(8.0))[0] for _ in range(3)]
        for name in names:
            st = os.stat(os.path.join(SHM_DIR, name))
            assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
            assert len(name.rpartition("x")[2]) == 32  # 128 random bits
        assert len(set(names)) == 3
    finally:
        pool.close()
