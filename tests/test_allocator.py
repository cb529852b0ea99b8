"""The malloc tuning the Trainer applies: takes effect under glibc, harmless elsewhere."""

from __future__ import annotations

import platform

from stn.training.allocator import reuse_freed_memory


def test_reuse_freed_memory() -> None:
    first, second = reuse_freed_memory(), reuse_freed_memory()
    assert first == second  # repeatable, never an error
    if platform.libc_ver()[0] == "glibc":
        assert first  # mallopt accepted both settings
