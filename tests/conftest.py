"""Test tiers: `gpu` tests run only where CuPy sees a GPU; everything else runs everywhere."""

import pytest

from devices.gpu import gpu_count


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_count() > 0:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU visible to CuPy (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
