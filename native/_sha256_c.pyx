# cython: language_level=3, boundscheck=False, wraparound=False
"""Native SHA-256 (recorder.integrity._sha256_c): a Cython skin over native/sha256.c.

Same API and digests as recorder/integrity/_sha256_py.py (hashlib). ``update`` releases the GIL for
inputs of GIL_RELEASE_BYTES or more (hashlib's threshold too), so a writer thread hashing a
fragment does not hold up capture threads; a mutex, taken without the GIL, keeps concurrent updates
of one object whole. ``hash_file`` hashes a whole file in C, reading and hashing without the GIL
from the first byte to the last. ``ACCELERATION`` names the block function the CPU allowed:
"sha-ni", "armv8-ce", "openssl" or "portable".
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc

import os

GIL_RELEASE_BYTES = 2048
#: hash_file's read size: the kernel copies this much, and the hash reads it back while it is
#: still in the CPU's cache (docs/performance.md, "Hashing whole files").
FILE_BUFFER_BYTES = 1 << 17


cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)


cdef extern from "sha256.h" nogil:
    ctypedef struct bwv_sha256:
        pass
    void bwv_sha256_init(bwv_sha256 *h)
    void bwv_sha256_update(bwv_sha256 *h, const uint8_t *data, size_t n)
    void bwv_sha256_digest(const bwv_sha256 *h, uint8_t *out)
    int bwv_sha256_fd(bwv_sha256 *h, int fd, uint8_t *buffer, size_t size, uint64_t *hashed)
    const char *bwv_sha256_acceleration()
    void bwv_sha256_force_portable(int on)


ACCELERATION = bwv_sha256_acceleration().decode()


def _force_portable(on):
    """Tests only: use (or stop using) the portable block function in every hasher."""
    global ACCELERATION
    bwv_sha256_force_portable(1 if on else 0)
    ACCELERATION = bwv_sha256_acceleration().decode()


def hash_file(int fd, Py_ssize_t buffer_bytes=FILE_BUFFER_BYTES):
    """(SHA-256 as 64 lower-case hex digits, size) of the whole file open on ``fd``, read from its
    first byte to its end into one buffer of ``buffer_bytes``; the descriptor's offset is left
    where it was. Reading and hashing run in C without the GIL. OSError if a read fails."""
    cdef bwv_sha256 h
    cdef uint64_t hashed = 0
    cdef uint8_t out[32]
    cdef uint8_t *buffer
    cdef int error
    cdef bytes raw
    if buffer_bytes < 64:
        raise ValueError(f"buffer_bytes is {buffer_bytes}: at least one 64-byte block")
    buffer = <uint8_t *> malloc(<size_t> buffer_bytes)
    if buffer == NULL:
        raise MemoryError()
    bwv_sha256_init(&h)
    with nogil:
        error = bwv_sha256_fd(&h, fd, buffer, <size_t> buffer_bytes, &hashed)
    free(buffer)
    if error:
        raise OSError(error, os.strerror(error))
    bwv_sha256_digest(&h, out)
    raw = out[:32]
    return raw.hex(), hashed


cdef class Sha256:
    """An incremental SHA-256 hasher with hashlib's interface: update, digest, hexdigest, copy."""

    cdef bwv_sha256 h
    cdef pthread_mutex_t lock

    name = "sha256"
    digest_size = 32
    block_size = 64

    def __cinit__(self, *args, **kwargs):
        pthread_mutex_init(&self.lock, NULL)
        bwv_sha256_init(&self.h)

    def __init__(self, data=b""):
        if data:
            self.update(data)

    def __dealloc__(self):
        pthread_mutex_destroy(&self.lock)

    def update(self, data):
        """Hash more bytes (any contiguous bytes-like object)."""
        cdef Py_buffer view
        if isinstance(data, str):
            raise TypeError("Strings must be encoded before hashing")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len >= GIL_RELEASE_BYTES:
                with nogil:
                    pthread_mutex_lock(&self.lock)
                    bwv_sha256_update(&self.h, <const uint8_t *> view.buf, <size_t> view.len)
                    pthread_mutex_unlock(&self.lock)
            else:
                with nogil:
                    pthread_mutex_lock(&self.lock)
                bwv_sha256_update(&self.h, <const uint8_t *> view.buf, <size_t> view.len)
                pthread_mutex_unlock(&self.lock)
        finally:
            PyBuffer_Release(&view)

    def digest(self):
        """The 32-byte digest of everything hashed so far (hashing may go on)."""
        cdef uint8_t out[32]
        with nogil:
            pthread_mutex_lock(&self.lock)
        bwv_sha256_digest(&self.h, out)
        pthread_mutex_unlock(&self.lock)
        return out[:32]

    def hexdigest(self):
        """The digest as 64 lower-case hex digits."""
        return self.digest().hex()

    def copy(self):
        """A hasher with the same state, independent from now on."""
        cdef Sha256 other = Sha256.__new__(Sha256)
        with nogil:
            pthread_mutex_lock(&self.lock)
        other.h = self.h
        pthread_mutex_unlock(&self.lock)
        return other
