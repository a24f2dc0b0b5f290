from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from tollway.core import ids
from tollway.core.assembler import new_id


def test_ids_are_unique_hex_across_pool_refills() -> None:
    seen = {ids.random_hex(12) for _ in range(3 * ids.POOL_BYTES // 12 + 7)}
    assert len(seen) == 3 * ids.POOL_BYTES // 12 + 7
    assert all(len(s) == 24 and int(s, 16) >= 0 for s in seen)


@given(st.lists(st.integers(min_value=1, max_value=ids.POOL_BYTES + 100), min_size=1, max_size=40))
def test_any_size_request_gets_exactly_that_many_bytes(sizes: list[int]) -> None:
    for n in sizes:
        assert len(ids.random_hex(n)) == 2 * n


def test_forked_child_does_not_reuse_the_parents_pool() -> None:
    ids.random_hex(1)  # a pool is loaded
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, ids.random_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    parent = ids.random_hex(16)
    assert child != parent and len(child) == 32


def test_new_id_keeps_its_shape() -> None:
    rid = new_id("resp_")
    assert rid.startswith("resp_") and len(rid) == 5 + 24
