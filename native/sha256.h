/* SHA-256 (FIPS 180-4) for the native hasher recorder.integrity._sha256_c.
 *
 * Four block functions, chosen once at run time from what the CPU offers: the x86 SHA extensions
 * (SHA-NI), the ARMv8 cryptography extensions (Raspberry Pi 5; the Pi 4 and Zero 2 lack them),
 * OpenSSL's libcrypto on a CPU with neither (its assembly is faster than portable C there; found
 * with dlopen, so the build needs no OpenSSL), and portable C where libcrypto is missing too.
 * RECORDER_SHA256_NO_ACCEL=1 in the environment skips the SHA instructions, as on a Pi 4. Each is compiled with a function-level target attribute,
 * so the build needs no -march flag and one binary runs on every CPU of its architecture.
 * Nothing here touches Python: every function may run without the GIL, from any thread; the
 * block function is chosen once (pthread_once) by the first call from any thread.
 */
#ifndef BWV_SHA256_H
#define BWV_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length;      /* bytes hashed so far */
    uint8_t buffer[64];   /* a partial block */
    size_t buffered;
} bwv_sha256;

void bwv_sha256_init(bwv_sha256 *h);
void bwv_sha256_update(bwv_sha256 *h, const uint8_t *data, size_t n);
/* Write the digest of everything hashed so far; h itself is left unchanged. */
void bwv_sha256_digest(const bwv_sha256 *h, uint8_t out[32]);

/* Hash the file open on fd from its first byte to its end, read with pread into buffer (size
 * bytes: small enough to stay in the CPU's cache between the kernel's copy and the hash), so the
 * descriptor's offset is left where it was. *hashed is the number of bytes hashed. Returns 0, or
 * the errno of the read that failed. */
int bwv_sha256_fd(bwv_sha256 *h, int fd, uint8_t *buffer, size_t size, uint64_t *hashed);

/* "sha-ni", "armv8-ce", "openssl" or "portable": the block function in use. */
const char *bwv_sha256_acceleration(void);
/* Force the portable block function (tests compare it with the accelerated one). */
void bwv_sha256_force_portable(int on);

#endif
