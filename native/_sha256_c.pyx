# cython: language_level=3, boundscheck=False, wraparound=False
"""Native SHA-256 (recorder.integrity._sha256_c): a Cython skin over native/sha256.c.

Same API and digests as recorder/integrity/_sha256_py.py (hashlib). ``update`` releases the GIL for
inputs of GIL_RELEASE_BYTES or more (hashlib's threshold too), so a writer thread hashing a
fragment does not hold up capture threads; a mutex, taken without the GIL, keeps concurrent updates
of one object whole. ``ACCELERATION`` names the block function the CPU allowed: "sha-ni",
"armv8-ce" or "portable".
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t

GIL_RELEASE_BYTES = 2048


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
    const char *bwv_sha256_acceleration()
    void bwv_sha256_force_portable(int on)


ACCELERATION = bwv_sha256_acceleration().decode()


def _force_portable(on):
    """Tests only: use (or stop using) the portable block function in every hasher."""
    global ACCELERATION
    bwv_sha256_force_portable(1 if on else 0)
    ACCELERATION = bwv_sha256_acceleration().decode()


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
