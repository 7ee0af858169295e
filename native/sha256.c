/* SHA-256 (FIPS 180-4): x86 SHA-NI and ARMv8 crypto-extension block functions, OpenSSL's
 * libcrypto where the CPU has neither, and portable C where libcrypto is missing too. */
#define _GNU_SOURCE 1  /* RTLD_NOLOAD */
#define _FILE_OFFSET_BITS 64  /* pread past 2 GiB on 32-bit ARM (Raspberry Pi OS armhf) */
#include "sha256.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define BWV_X86 1
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__aarch64__)
#define BWV_ARM64 1
#include <arm_neon.h>
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6)
#endif
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

typedef void (*block_fn)(uint32_t state[8], const uint8_t *p, size_t blocks);

/* -- portable ---------------------------------------------------------------------------------- */

static inline uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void blocks_portable(uint32_t state[8], const uint8_t *p, size_t blocks)
{
    uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
    int i;

    while (blocks--) {
        for (i = 0; i < 16; i++)
            w[i] = load_be32(p + 4 * i);
        for (i = 16; i < 64; i++) {
            uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        a = state[0]; b = state[1]; c = state[2]; d = state[3];
        e = state[4]; f = state[5]; g = state[6]; h = state[7];
        for (i = 0; i < 64; i++) {
            t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
            t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
        p += 64;
    }
}

/* -- x86 SHA extensions ------------------------------------------------------------------------ */

#ifdef BWV_X86
/* The SHA-NI round instruction works on the state as two registers, ABEF and CDGH. Each 4-round
 * group: add the round constants to four schedule words, run two rounds on the low pair of words
 * and two on the high pair. Schedule words 16..63 come from the previous sixteen through
 * sha256msg1 (sigma0 part), an alignr for W[t-7] and sha256msg2 (sigma1 part). */
#define ROUNDS4(w, g)                                                                  \
    do {                                                                               \
        __m128i wk = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                  \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));         \
    } while (0)
#define SCHEDULE(w0, w1, w2, w3)                                                       \
    (w0) = _mm_sha256msg2_epu32(                                                       \
        _mm_add_epi32(_mm_sha256msg1_epu32((w0), (w1)), _mm_alignr_epi8((w3), (w2), 4)), (w3))

__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_shani(uint32_t state[8], const uint8_t *p, size_t blocks)
{
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    __m128i w0, w1, w2, w3, abef0, cdgh0, feba, dchg;

    while (blocks--) {
        abef0 = abef;
        cdgh0 = cdgh;
        w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), swap);
        w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), swap);
        w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), swap);
        w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), swap);
        ROUNDS4(w0, 0);
        ROUNDS4(w1, 1);
        ROUNDS4(w2, 2);
        ROUNDS4(w3, 3);
        SCHEDULE(w0, w1, w2, w3); ROUNDS4(w0, 4);
        SCHEDULE(w1, w2, w3, w0); ROUNDS4(w1, 5);
        SCHEDULE(w2, w3, w0, w1); ROUNDS4(w2, 6);
        SCHEDULE(w3, w0, w1, w2); ROUNDS4(w3, 7);
        SCHEDULE(w0, w1, w2, w3); ROUNDS4(w0, 8);
        SCHEDULE(w1, w2, w3, w0); ROUNDS4(w1, 9);
        SCHEDULE(w2, w3, w0, w1); ROUNDS4(w2, 10);
        SCHEDULE(w3, w0, w1, w2); ROUNDS4(w3, 11);
        SCHEDULE(w0, w1, w2, w3); ROUNDS4(w0, 12);
        SCHEDULE(w1, w2, w3, w0); ROUNDS4(w1, 13);
        SCHEDULE(w2, w3, w0, w1); ROUNDS4(w2, 14);
        SCHEDULE(w3, w0, w1, w2); ROUNDS4(w3, 15);
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
        p += 64;
    }
    feba = _mm_shuffle_epi32(abef, 0x1B);
    dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

static block_fn detect(const char **name)
{
    unsigned int eax, ebx, ecx, edx;

    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_SSE4_1) && (ecx & bit_SSSE3)
            && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx & (1u << 29))) {
        *name = "sha-ni";
        return blocks_shani;
    }
    *name = "portable";
    return blocks_portable;
}
#endif

/* -- ARMv8 cryptography extensions ------------------------------------------------------------- */

#ifdef BWV_ARM64
__attribute__((target("+crypto")))
static void blocks_armv8(uint32_t state[8], const uint8_t *p, size_t blocks)
{
    uint32x4_t abcd = vld1q_u32(&state[0]);
    uint32x4_t efgh = vld1q_u32(&state[4]);
    uint32x4_t w[4], abcd0, efgh0, wk, previous;
    int g;

    while (blocks--) {
        abcd0 = abcd;
        efgh0 = efgh;
        for (g = 0; g < 4; g++)
            w[g] = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p + 16 * g)));
        for (g = 0; g < 16; g++) {
            if (g >= 4)
                w[g & 3] = vsha256su1q_u32(vsha256su0q_u32(w[g & 3], w[(g + 1) & 3]),
                                           w[(g + 2) & 3], w[(g + 3) & 3]);
            wk = vaddq_u32(w[g & 3], vld1q_u32(&K[4 * g]));
            previous = abcd;
            abcd = vsha256hq_u32(abcd, efgh, wk);
            efgh = vsha256h2q_u32(efgh, previous, wk);
        }
        abcd = vaddq_u32(abcd, abcd0);
        efgh = vaddq_u32(efgh, efgh0);
        p += 64;
    }
    vst1q_u32(&state[0], abcd);
    vst1q_u32(&state[4], efgh);
}

static block_fn detect(const char **name)
{
    if (getauxval(AT_HWCAP) & HWCAP_SHA2) {
        *name = "armv8-ce";
        return blocks_armv8;
    }
    *name = "portable";
    return blocks_portable;
}
#endif

#if !defined(BWV_X86) && !defined(BWV_ARM64)
static block_fn detect(const char **name)
{
    *name = "portable";
    return blocks_portable;
}
#endif

/* -- OpenSSL's libcrypto ----------------------------------------------------------------------- */

/* On a CPU without SHA instructions (a Pi 4 or Zero 2 W, an older x86) OpenSSL's assembly (NEON,
 * AVX2, SSSE3) runs about 1.7 times as fast as the portable C above. It is reached through
 * libcrypto's SHA256_Update, found at run time: Python's hashlib has normally loaded libcrypto
 * already, the build needs no OpenSSL headers, and without libcrypto the portable C remains. */

/* The layout of OpenSSL's SHA256_CTX (1.1 and 3.x). Given whole blocks and an empty buffer (num
 * 0), SHA256_Update hands them all to OpenSSL's block function at once (its AVX2 code hashes two
 * blocks together; one call per block, as SHA256_Transform makes, ran at 0.93x of hashlib) and
 * leaves nothing buffered: only h, and the length counters we ignore, change. */
typedef struct {
    uint32_t h[8];
    uint32_t Nl, Nh;
    uint32_t data[16];
    unsigned int num, md_len;
} openssl_sha256_ctx;

typedef int (*openssl_update_fn)(openssl_sha256_ctx *c, const void *data, size_t n);
static openssl_update_fn openssl_update;

static void blocks_openssl(uint32_t state[8], const uint8_t *p, size_t blocks)
{
    openssl_sha256_ctx ctx;

    memset(&ctx, 0, sizeof ctx);
    memcpy(ctx.h, state, sizeof ctx.h);
    ctx.md_len = 32;
    openssl_update(&ctx, p, blocks * 64);
    memcpy(state, ctx.h, sizeof ctx.h);
}

static int find_openssl(void)
{
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1"};
    void *library, *symbol;
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (library == NULL)
            library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (library == NULL)
            continue;
        symbol = dlsym(library, "SHA256_Update");
        if (symbol != NULL) {
            memcpy(&openssl_update, &symbol, sizeof symbol);  /* object to function pointer */
            return 1;  /* the library stays loaded for the life of the process */
        }
        dlclose(library);
    }
    return 0;
}

/* RECORDER_SHA256_NO_ACCEL=1: behave as on a CPU without SHA instructions (tests, benches). */
static int instructions_refused(void)
{
    const char *value = getenv("RECORDER_SHA256_NO_ACCEL");

    return value != NULL && strcmp(value, "1") == 0;
}

/* -- dispatch and the streaming interface ------------------------------------------------------ */

/* The CPU's block function, chosen once by whichever thread gets here first: pthread_once makes
 * the others wait for it and see both variables written (a plain "if (!chosen)" let a thread
 * see chosen set and chosen_name still NULL, and is a data race in C's memory model). */
static block_fn chosen;
static const char *chosen_name;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
/* Set by tests while other threads may hash: read and written atomically. It publishes no other
 * data, so relaxed order is enough. */
static int portable_forced;

static void choose(void)
{
    if (!instructions_refused()) {
        chosen = detect(&chosen_name);
        if (chosen != blocks_portable)
            return;
    }
    if (find_openssl()) {
        chosen = blocks_openssl;
        chosen_name = "openssl";
        return;
    }
    chosen = blocks_portable;
    chosen_name = "portable";
}

static int forced(void)
{
    return __atomic_load_n(&portable_forced, __ATOMIC_RELAXED);
}

static block_fn blocks_fn(void)
{
    pthread_once(&chosen_once, choose);
    return forced() ? blocks_portable : chosen;
}

const char *bwv_sha256_acceleration(void)
{
    pthread_once(&chosen_once, choose);
    return forced() ? "portable" : chosen_name;
}

void bwv_sha256_force_portable(int on)
{
    __atomic_store_n(&portable_forced, on ? 1 : 0, __ATOMIC_RELAXED);
}

void bwv_sha256_init(bwv_sha256 *h)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h->state, initial, sizeof initial);
    h->length = 0;
    h->buffered = 0;
}

void bwv_sha256_update(bwv_sha256 *h, const uint8_t *data, size_t n)
{
    block_fn blocks = blocks_fn();
    size_t take;

    h->length += n;
    if (h->buffered) {
        take = 64 - h->buffered < n ? 64 - h->buffered : n;
        memcpy(h->buffer + h->buffered, data, take);
        h->buffered += take;
        data += take;
        n -= take;
        if (h->buffered < 64)
            return;
        blocks(h->state, h->buffer, 1);
        h->buffered = 0;
    }
    if (n >= 64) {
        blocks(h->state, data, n / 64);
        data += n & ~(size_t)63;
        n &= 63;
    }
    if (n) {
        memcpy(h->buffer, data, n);
        h->buffered = n;
    }
}

void bwv_sha256_digest(const bwv_sha256 *h, uint8_t out[32])
{
    bwv_sha256 last = *h;
    uint8_t pad[72] = {0x80};
    uint64_t bits = h->length * 8;
    size_t padding = (h->buffered < 56 ? 56 : 120) - h->buffered;
    size_t i;

    for (i = 0; i < 8; i++)
        pad[padding + i] = (uint8_t)(bits >> (56 - 8 * i));
    bwv_sha256_update(&last, pad, padding + 8);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(last.state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(last.state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(last.state[i] >> 8);
        out[4 * i + 3] = (uint8_t)last.state[i];
    }
}

/* -- whole files ------------------------------------------------------------------------------- */

int bwv_sha256_fd(bwv_sha256 *h, int fd, uint8_t *buffer, size_t size, uint64_t *hashed)
{
    uint64_t offset = 0;
    ssize_t got;

    /* Doubles the kernel's read-ahead on a file not yet cached; advice only, so its failure
     * (a file system that ignores it) changes nothing. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        got = pread(fd, buffer, size, (off_t)offset);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            *hashed = offset;
            return errno;
        }
        bwv_sha256_update(h, buffer, (size_t)got);
        offset += (uint64_t)got;
    }
    *hashed = offset;
    return 0;
}
