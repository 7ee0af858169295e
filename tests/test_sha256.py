"""The SHA-256 hasher, on both implementations, against FIPS 180 vectors, hashlib and sha256sum."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.twins import twin_module


@pytest.fixture(params=["accelerated", "portable"])
def native_sha(request: pytest.FixtureRequest) -> ModuleType:
    """The native hasher, once with the CPU's SHA instructions (if any) and once portable C."""
    if request.config.getoption("--no-native"):
        pytest.skip("--no-native: native implementation skipped")
    module = twin_module("sha256", "native")
    module._force_portable(request.param == "portable")
    yield module
    module._force_portable(False)


FIPS_VECTORS = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]


@pytest.mark.parametrize("message, expected", FIPS_VECTORS, ids=["empty", "abc", "448bit", "1M-a"])
def test_fips_180_vectors(sha_impl: ModuleType, message: bytes, expected: str) -> None:
    assert sha_impl.Sha256(message).hexdigest() == expected


@pytest.mark.parametrize("message, expected", FIPS_VECTORS, ids=["empty", "abc", "448bit", "1M-a"])
def test_fips_180_vectors_on_every_native_block_function(native_sha: ModuleType, message: bytes,
                                                         expected: str) -> None:
    assert native_sha.Sha256(message).hexdigest() == expected


def test_portable_switch_names_the_block_function(native_sha: ModuleType) -> None:
    assert native_sha.ACCELERATION in ("sha-ni", "armv8-ce", "openssl", "portable")
    assert native_sha.Sha256(b"x").hexdigest() == hashlib.sha256(b"x").hexdigest()


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=20))
def test_any_split_into_updates_gives_hashlibs_digest(sha_impl: ModuleType,
                                                      chunks: list[bytes]) -> None:
    hasher = sha_impl.Sha256()
    for chunk in chunks:
        hasher.update(chunk)
    assert hasher.digest() == hashlib.sha256(b"".join(chunks)).digest()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fixture is per-switch
@given(size=st.integers(0, 300_000), cut=st.integers(0, 300_000), seed=st.integers(0, 2**32))
def test_large_buffers_on_both_block_functions(native_sha: ModuleType, size: int, cut: int,
                                               seed: int) -> None:
    data = seed.to_bytes(5, "little") * (size // 5)
    hasher = native_sha.Sha256(data[:cut])
    hasher.update(memoryview(data)[cut:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_digest_leaves_the_hasher_going(sha_impl: ModuleType) -> None:
    hasher = sha_impl.Sha256(b"first ")
    assert hasher.hexdigest() == hashlib.sha256(b"first ").hexdigest()
    hasher.update(b"second")
    assert hasher.hexdigest() == hashlib.sha256(b"first second").hexdigest()


def test_copy_is_independent(sha_impl: ModuleType) -> None:
    hasher = sha_impl.Sha256(b"shared ")
    other = hasher.copy()
    hasher.update(b"one")
    other.update(b"two")
    assert hasher.digest() == hashlib.sha256(b"shared one").digest()
    assert other.digest() == hashlib.sha256(b"shared two").digest()


def test_accepts_bytearray_and_memoryview_and_refuses_str(sha_impl: ModuleType) -> None:
    hasher = sha_impl.Sha256(bytearray(b"ab"))
    hasher.update(memoryview(b"cd"))
    assert hasher.digest() == hashlib.sha256(b"abcd").digest()
    with pytest.raises(TypeError):
        hasher.update("text")  # type: ignore[arg-type]
    assert (hasher.name, hasher.digest_size, hasher.block_size) == ("sha256", 32, 64)


def test_agrees_with_sha256sum(sha_impl: ModuleType, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4099
    path = tmp_path / "blob"
    path.write_bytes(data)
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True,
                         text=True).stdout
    assert sha_impl.Sha256(data).hexdigest() == out.split()[0]


def counted_while(work: Callable[[], object]) -> int:
    """How often another Python thread counted while ``work`` ran: with the GIL held all along,
    it would be starved for the whole call (the switch interval is made 0.2 s meanwhile)."""
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.2)
    thread = threading.Thread(target=count)
    try:
        thread.start()
        while counter[0] == 0:
            pass
        before = counter[0]
        work()
        return counter[0] - before
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


def test_large_update_lets_other_threads_run(sha_impl: ModuleType) -> None:
    data = bytes(48 << 20)
    assert counted_while(lambda: sha_impl.Sha256(data)) > 1000


def test_threads_hashing_their_own_data_get_their_own_digests(sha_impl: ModuleType) -> None:
    blobs = [bytes([i]) * (3 << 20) for i in range(4)]
    results: list[str] = [""] * 4

    def work(index: int) -> None:
        hasher = sha_impl.Sha256()
        for start in range(0, len(blobs[index]), 100_000):
            hasher.update(blobs[index][start:start + 100_000])
        results[index] = hasher.hexdigest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [hashlib.sha256(blob).hexdigest() for blob in blobs]


FRESH_PROCESS_THREADS = """
import hashlib, importlib, sys, threading

module = importlib.import_module(sys.argv[1])
barrier = threading.Barrier(16)
failures = []


def work(index):
    data = bytes((index * 7 + i) & 0xFF for i in range(1 + index * 997))  # 1 B to 15 kB
    barrier.wait()  # every thread's first update at once, right after the import
    hasher = module.Sha256()
    for start in range(0, len(data), 1 + index * 300):
        hasher.update(data[start:start + 1 + index * 300])
    if hasher.hexdigest() != hashlib.sha256(data).hexdigest():
        failures.append(index)


threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(module.ACCELERATION, failures)
sys.exit(1 if failures else 0)
"""


def test_many_threads_hashing_right_after_import_in_a_fresh_process(sha_impl: ModuleType,
                                                                    tmp_path: Path) -> None:
    """The block function is chosen safely when the first hashes come from many threads at once
    (native/sha256.c chooses it once, under pthread_once); each digest is hashlib's."""
    for _ in range(5):
        # under emulation (benches/arm/run-emulated) this interpreter runs through qemu, which
        # the script names in BWV_TEST_PYTHON
        python = os.environ.get("BWV_TEST_PYTHON", "").split() or [sys.executable]
        run = subprocess.run([*python, "-c", FRESH_PROCESS_THREADS, sha_impl.__name__],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.split()[0] in ("sha-ni", "armv8-ce", "openssl", "portable", "hashlib")


def test_public_module_uses_the_native_hasher_when_built() -> None:
    import recorder.integrity.sha256
    from recorder import _native

    choice = _native.load("sha256")
    assert recorder.integrity.sha256.Sha256 is choice.module.Sha256
    if _native.policy_from_environ() is _native.NativePolicy.REQUIRED:
        assert choice.implementation == "native"
        assert recorder.integrity.sha256.ACCELERATION in ("sha-ni", "armv8-ce", "openssl", "portable")


# --- whole files (hash_file): the one routine verify and the station hash files with


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, -1, -2, -3, (3 << 20) + 7],
                         ids=str)  # -1, -2, -3: one read buffer less one, exactly, plus one byte
def test_hash_file_gives_the_digest_and_size_of_the_whole_file(sha_impl: ModuleType,
                                                               tmp_path: Path, size: int) -> None:
    if size < 0:
        size = sha_impl.FILE_BUFFER_BYTES + size + 2
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as file:
        file.seek(size // 2)  # hashed from the first byte all the same; the offset is left alone
        assert sha_impl.hash_file(file.fileno()) == (hashlib.sha256(data).hexdigest(), size)
        assert file.tell() == size // 2
        assert file.read() == data[size // 2:]


@pytest.mark.parametrize("buffer_bytes", [64, 100, 4096, 1 << 20])
def test_hash_file_any_read_size_gives_the_same_digest(native_sha: ModuleType, tmp_path: Path,
                                                       buffer_bytes: int) -> None:
    """On every native block function too: reads of any size, a partial block between them."""
    data = os.urandom(300_001)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as file:
        assert native_sha.hash_file(file.fileno(), buffer_bytes) == (
            hashlib.sha256(data).hexdigest(), len(data))


def test_hash_file_refuses_a_buffer_smaller_than_a_block_and_reports_read_errors(
        sha_impl: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    with open(path, "rb") as file:
        with pytest.raises(ValueError):
            sha_impl.hash_file(file.fileno(), 63)
    with pytest.raises(OSError) as directory:  # read(2) of a directory: EISDIR
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            sha_impl.hash_file(fd)
        finally:
            os.close(fd)
    assert directory.value.errno == errno.EISDIR
    read_fd, write_fd = os.pipe()
    try:
        with pytest.raises(OSError) as pipe:  # no offsets on a pipe: ESPIPE, not a hang
            sha_impl.hash_file(read_fd)
        assert pipe.value.errno == errno.ESPIPE
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_hash_file_lets_other_threads_run(sha_impl: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(bytes(48 << 20))
    with open(path, "rb") as file:
        assert counted_while(lambda: sha_impl.hash_file(file.fileno())) > 1000


def test_public_file_sha256_hashes_a_path(tmp_path: Path) -> None:
    from recorder.integrity.sha256 import file_sha256
    path = tmp_path / "blob"
    path.write_bytes(b"abc" * 100_000)
    assert file_sha256(path) == (hashlib.sha256(b"abc" * 100_000).hexdigest(), 300_000)
