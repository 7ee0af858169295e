"""The AES-128-CTR routine the encrypting muxer uses, as Python sees it (``Aes128Ctr`` and
``aes128_ctr`` of the native mux module, over mux.c's bwv_aes128_ctr; the pure twins in
recorder/storage/_mux_cenc.py over ``cryptography``): both twins give the same bytes as each
other and as ``openssl enc -aes-128-ctr``, a context used again starts each call afresh at its
counter block, and the counter carries across all 16 bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.storage import _mux_cenc

OPENSSL = shutil.which("openssl")
keys = st.binary(min_size=16, max_size=16)
# counter blocks near a carry out of the low 8 bytes and out of all 16 as well as random ones
ivs = st.one_of(st.binary(min_size=16, max_size=16),
                st.binary(min_size=8, max_size=8).map(lambda high: high + b"\xff" * 8),
                st.just(b"\xff" * 16))
datas = st.binary(max_size=2000)


@pytest.fixture(scope="session")
def native_aes(pytestconfig: pytest.Config) -> ModuleType:
    from support.twins import twin_module

    if pytestconfig.getoption("--no-native"):
        pytest.skip("--no-native: a differential test needs the native implementation")
    return twin_module("mux", "native")


def openssl_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, "enc", "-aes-128-ctr", "-K", key.hex(), "-iv", iv.hex()],
                          input=data, capture_output=True, check=True).stdout


@settings(max_examples=300, deadline=None)
@given(key=keys, iv=ivs, data=datas)
def test_both_twins_give_the_same_bytes(native_aes: ModuleType, key: bytes, iv: bytes,
                                        data: bytes) -> None:
    native = native_aes.aes128_ctr(key, iv, data)
    assert native == _mux_cenc.aes128_ctr(key, iv, data)
    assert len(native) == len(data)
    assert native_aes.aes128_ctr(key, iv, native) == data  # CTR is its own inverse


@settings(max_examples=100, deadline=None)
@given(key=keys, calls=st.lists(st.tuples(ivs, datas, st.booleans()), min_size=1, max_size=6))
def test_a_context_used_again_starts_each_call_at_its_counter_block(
        native_aes: ModuleType, key: bytes, calls: list[tuple[bytes, bytes, bool]]) -> None:
    """A call that ends inside a block (an AAC frame) leaves nothing for the next one."""
    native, pure = native_aes.Aes128Ctr(key), _mux_cenc.Aes128Ctr(key)
    for iv, data, in_place in calls:
        if in_place:
            a, b = bytearray(data), bytearray(data)
            native.apply(iv, a)
            pure.apply(iv, memoryview(b))
            assert a == b == _mux_cenc.aes128_ctr(key, iv, data)
        else:
            assert native.encrypt(iv, data) == pure.encrypt(iv, data) \
                == _mux_cenc.aes128_ctr(key, iv, data)


@pytest.mark.skipif(OPENSSL is None, reason="no openssl command on this machine")
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4095, 4096, 70_000])
def test_both_twins_give_what_openssl_enc_gives(native_aes: ModuleType, size: int) -> None:
    for key, iv in [(bytes(range(16)), bytes(range(16, 32))),
                    (b"\x5a" * 16, b"\x01" * 8 + b"\xff" * 8),  # a carry into the high 8 bytes
                    (bytes(range(200, 216)), b"\xff" * 16)]:  # and out of all 16: wraps to 0
        data = bytes((k * 7 + size) & 0xFF for k in range(size))
        expected = openssl_ctr(key, iv, data)
        assert len(expected) == size
        assert native_aes.aes128_ctr(key, iv, data) == expected
        assert _mux_cenc.aes128_ctr(key, iv, data) == expected


@pytest.mark.parametrize("twin", ["native", "pure"])
def test_keys_and_counter_blocks_of_another_size_are_refused(
        request: pytest.FixtureRequest, twin: str) -> None:
    module = request.getfixturevalue("native_aes") if twin == "native" else _mux_cenc
    with pytest.raises(ValueError, match="16 bytes, not 24"):
        module.Aes128Ctr(bytes(24))
    with pytest.raises(ValueError, match="16 bytes, not 8"):
        module.aes128_ctr(bytes(16), bytes(8), b"data")
    with pytest.raises((TypeError, BufferError)):
        module.Aes128Ctr(bytes(16)).apply(bytes(16), b"read-only bytes")
