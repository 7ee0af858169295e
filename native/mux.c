/* Fragmented-MP4 muxer core: the bytes of recorder/storage/_mux_py.py, whose docstring has the rules,
 * and with a content key those of recorder/storage/_mux_cenc.py (ISO Common Encryption 'cenc'),
 * AES-128-CTR through OpenSSL's libcrypto, never AES written here. */
#include "mux.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

enum {
    VIDEO_TRACK_ID = 1,
    AUDIO_TRACK_ID = 2,
    TFHD_DEFAULT_BASE_IS_MOOF = 0x020000,
    TRUN_VIDEO = 0x000001 | 0x000100 | 0x000200 | 0x000400,
    TRUN_CTO = 0x000800,
    TRUN_AUDIO = 0x000001 | 0x000100 | 0x000200
};
#define SAMPLE_FLAGS_SYNC 0x02000000u
#define SAMPLE_FLAGS_NON_SYNC 0x01010000u
#define MAX_MDAT ((size_t)0xFFFFFFFFu)

void bwv_mux_init(bwv_mux *m)
{
    memset(m, 0, sizeof *m);
}

static void run_free(bwv_run *r)
{
    free(r->ticks);
    free(r->sizes);
    free(r->ctos);
    free(r->keys);
    memset(r, 0, sizeof *r);
}

void bwv_mux_free(bwv_mux *m)
{
    bwv_aes128_free(m->cipher);
    free(m->video_aux.data);
    free(m->audio_aux.data);
    free(m->video_aux_sizes.data);
    free(m->audio_aux_sizes.data);
    free(m->video_nals);
    free(m->audio_data.data);
    run_free(&m->video);
    run_free(&m->audio);
    free(m->nals);
    memset(m, 0, sizeof *m);
}

static int reserve(bwv_bytes *b, size_t extra)
{
    size_t cap;
    uint8_t *data;

    if (b->len + extra <= b->cap)
        return BWV_MUX_OK;
    cap = b->cap ? b->cap : 65536;
    while (cap < b->len + extra)
        cap *= 2;
    data = realloc(b->data, cap);
    if (!data)
        return BWV_MUX_ENOMEM;
    b->data = data;
    b->cap = cap;
    return BWV_MUX_OK;
}

static int run_push(bwv_run *r, int64_t ticks, uint32_t size, uint32_t cto, int key)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        int64_t *t = realloc(r->ticks, cap * sizeof *t);
        if (t)
            r->ticks = t;
        uint32_t *s = realloc(r->sizes, cap * sizeof *s);
        if (s)
            r->sizes = s;
        uint32_t *c = realloc(r->ctos, cap * sizeof *c);
        if (c)
            r->ctos = c;
        uint8_t *k = realloc(r->keys, cap);
        if (k)
            r->keys = k;
        if (!t || !s || !c || !k)
            return BWV_MUX_ENOMEM;
        r->cap = cap;
    }
    r->ticks[r->n] = ticks;
    r->sizes[r->n] = size;
    r->ctos[r->n] = cto;
    r->keys[r->n] = (uint8_t)key;
    r->n++;
    return BWV_MUX_OK;
}

/* Offset of the first 00 00 01 at or after `from`, or n. memchr (vectorised in every libc that
 * matters) jumps from zero byte to zero byte; compressed video has about one in 256, and the
 * emulation prevention bytes of H.264 make 00 00 rare outside start codes. */
static size_t find_start_code(const uint8_t *p, size_t from, size_t n)
{
    const uint8_t *zero;
    size_t i = from;

    while (n >= 3 && i <= n - 3) {
        zero = memchr(p + i, 0, n - 2 - i);
        if (!zero)
            return n;
        i = (size_t)(zero - p);
        if (p[i + 1] == 0 && p[i + 2] == 1)
            return i;
        i++;
    }
    return n;
}

int bwv_mux_scan(bwv_mux *m, const uint8_t *p, size_t n, size_t *first)
{
    size_t at, start, end, next, k;

    m->nal_count = 0;
    at = find_start_code(p, 0, n);
    if (at == n)
        return BWV_MUX_ENOSTART;
    for (k = 0; k < at; k++) {
        if (p[k] != 0) {
            *first = at;
            return BWV_MUX_ELEADING;
        }
    }
    start = at + 3;
    for (;;) {
        next = find_start_code(p, start, n);
        end = next;
        while (end > start && p[end - 1] == 0)
            end--;
        if (end > start) {
            if (m->nal_count == m->nal_cap) {
                size_t cap = m->nal_cap ? m->nal_cap * 2 : 64;
                size_t *nals = realloc(m->nals, cap * 2 * sizeof *nals);
                if (!nals)
                    return BWV_MUX_ENOMEM;
                m->nals = nals;
                m->nal_cap = cap;
            }
            m->nals[2 * m->nal_count] = start;
            m->nals[2 * m->nal_count + 1] = end;
            m->nal_count++;
        }
        if (next == n)
            break;
        start = next + 3;
    }
    return m->nal_count ? BWV_MUX_OK : BWV_MUX_ENONAL;
}

static inline uint8_t *put32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

static inline uint8_t *put64(uint8_t *o, uint64_t v)
{
    return put32(put32(o, (uint32_t)(v >> 32)), (uint32_t)v);
}

static inline uint8_t *put_type(uint8_t *o, const char *type)
{
    memcpy(o, type, 4);
    return o + 4;
}

static inline uint8_t *put16(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

void *bwv_aes128_new(const uint8_t *key)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    /* The key is expanded here, once: bwv_aes128_ctr only sets the counter. */
    if (ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, key, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void bwv_aes128_free(void *aes)
{
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)aes);
}

int bwv_aes128_ctr(void *aes, const uint8_t *iv16, uint8_t *buf, size_t n)
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)aes;
    int done;

    /* no cipher and no key: the context keeps both and takes only the new counter block */
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv16) != 1)
        return BWV_MUX_ECRYPTO;
    while (n) {  /* EVP takes an int length */
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        if (EVP_EncryptUpdate(ctx, buf, &done, buf, chunk) != 1)
            return BWV_MUX_ECRYPTO;
        buf += chunk;
        n -= (size_t)chunk;
    }
    return BWV_MUX_OK;
}

int bwv_mux_set_key(bwv_mux *m, const uint8_t *key)
{
    void *aes = bwv_aes128_new(key);

    if (!aes)
        return BWV_MUX_ENOMEM;
    bwv_aes128_free(m->cipher);
    m->cipher = aes;
    return BWV_MUX_OK;
}

/* The 8-byte IV of a track's n-th sample (from 1): the track id, then n in 7 bytes. */
static uint8_t *put_iv(uint8_t *o, uint32_t track_id, uint64_t number)
{
    return put64(o, (uint64_t)track_id << 56 | number);
}

/* A sample's first counter block: its 8-byte IV and 8 zero bytes. */
static void counter_start(uint8_t *counter, const uint8_t *iv8)
{
    memcpy(counter, iv8, BWV_CENC_IV_BYTES);
    memset(counter + BWV_CENC_IV_BYTES, 0, 16 - BWV_CENC_IV_BYTES);
}

/* Advance a counter block by `blocks`, as a 128-bit big-endian number (as CTR mode does). */
static void counter_add(uint8_t *counter, uint64_t blocks)
{
    int k;

    for (k = 15; k >= 0 && blocks; k--) {
        blocks += counter[k];
        counter[k] = (uint8_t)blocks;
        blocks >>= 8;
    }
}

static int aux_push(bwv_bytes *aux, bwv_bytes *sizes, const uint8_t *info, size_t n)
{
    if (reserve(aux, n) != BWV_MUX_OK || reserve(sizes, 1) != BWV_MUX_OK)
        return BWV_MUX_ENOMEM;
    memcpy(aux->data + aux->len, info, n);
    aux->len += n;
    sizes->data[sizes->len++] = (uint8_t)n;
    return BWV_MUX_OK;
}

/* A subsample of `clear` bytes (split at BWV_CENC_MAX_CLEAR) then `protected_bytes`. */
static int subsample(uint8_t *entries, size_t *count, size_t clear, size_t protected_bytes)
{
    while (clear > BWV_CENC_MAX_CLEAR) {
        if (*count == BWV_CENC_MAX_SUBSAMPLES)
            return BWV_MUX_ESUBSAMPLES;
        put32(put16(entries + 6 * (*count)++, BWV_CENC_MAX_CLEAR), 0);
        clear -= BWV_CENC_MAX_CLEAR;
    }
    if (*count == BWV_CENC_MAX_SUBSAMPLES)
        return BWV_MUX_ESUBSAMPLES;
    put32(put16(entries + 6 * (*count)++, (uint32_t)clear), (uint32_t)protected_bytes);
    return BWV_MUX_OK;
}

/* The senc entry of the video sample last scanned in p: its IV and subsamples. A slice (NAL
 * types 1-5) of more than 16 bytes keeps its length, header and (size - 1) % 16 bytes clear and
 * has the rest encrypted; other NAL units are clear; adjacent clear bytes merge. */
static int video_aux(bwv_mux *m, const uint8_t *p)
{
    uint8_t info[BWV_CENC_IV_BYTES + 2 + 6 * BWV_CENC_MAX_SUBSAMPLES];
    size_t count = 0, clear = 0, k, size, body;
    int type, rc;

    for (k = 0; k < m->nal_count; k++) {
        size = m->nals[2 * k + 1] - m->nals[2 * k];
        type = p[m->nals[2 * k]] & 0x1F;
        if (type >= 1 && type <= 5 && size > 16) {
            body = size - 1;
            rc = subsample(info + BWV_CENC_IV_BYTES + 2, &count, clear + 4 + 1 + body % 16,
                           body - body % 16);
            if (rc != BWV_MUX_OK)
                return rc;
            clear = 0;
        } else {
            clear += 4 + size;
        }
    }
    if (clear || !count) {
        rc = subsample(info + BWV_CENC_IV_BYTES + 2, &count, clear, 0);
        if (rc != BWV_MUX_OK)
            return rc;
    }
    put_iv(info, VIDEO_TRACK_ID, m->video_number + 1);
    put16(info + BWV_CENC_IV_BYTES, (uint32_t)count);
    rc = aux_push(&m->video_aux, &m->video_aux_sizes, info, BWV_CENC_IV_BYTES + 2 + 6 * count);
    if (rc == BWV_MUX_OK)
        m->video_number++;
    return rc;
}

int bwv_mux_add_video(bwv_mux *m, const uint8_t *p, int64_t ticks, uint32_t cto, int key)
{
    size_t size = 0, k, len;
    int rc;

    for (k = 0; k < m->nal_count; k++)
        size += 4 + m->nals[2 * k + 1] - m->nals[2 * k];
    if (size > MAX_MDAT)
        return BWV_MUX_ETOOBIG;
    if (m->video_nal_count + m->nal_count > m->video_nal_cap) {
        size_t cap = m->video_nal_cap ? m->video_nal_cap : 1024;
        bwv_nal *nals;
        while (cap < m->video_nal_count + m->nal_count)
            cap *= 2;
        nals = realloc(m->video_nals, cap * sizeof *nals);
        if (!nals)
            return BWV_MUX_ENOMEM;
        m->video_nals = nals;
        m->video_nal_cap = cap;
    }
    if (m->cipher) {  /* first: a frame of too many slices leaves every table as it was */
        rc = video_aux(m, p);
        if (rc != BWV_MUX_OK)
            return rc;
    }
    rc = run_push(&m->video, ticks, (uint32_t)size, cto, key);
    if (rc != BWV_MUX_OK) {
        if (m->cipher) {  /* take the sample's auxiliary information back out */
            m->video_aux.len -= m->video_aux_sizes.data[--m->video_aux_sizes.len];
            m->video_number--;
        }
        return rc;
    }
    for (k = 0; k < m->nal_count; k++) {
        len = m->nals[2 * k + 1] - m->nals[2 * k];
        m->video_nals[m->video_nal_count].data = p + m->nals[2 * k];
        m->video_nals[m->video_nal_count].len = len;
        m->video_nal_count++;
    }
    m->video_data.len += size;
    return BWV_MUX_OK;
}

int bwv_mux_add_audio(bwv_mux *m, const uint8_t *p, size_t n, int64_t ticks)
{
    int rc;

    if (n == 0)
        return BWV_MUX_EEMPTY;  /* and memcpy to the NULL of a buffer never grown is undefined */
    if (n > MAX_MDAT)
        return BWV_MUX_ETOOBIG;
    rc = reserve(&m->audio_data, n);
    if (rc != BWV_MUX_OK)
        return rc;
    rc = run_push(&m->audio, ticks, (uint32_t)n, 0, 1);
    if (rc != BWV_MUX_OK)
        return rc;
    memcpy(m->audio_data.data + m->audio_data.len, p, n);
    if (m->cipher) {  /* an AAC frame is encrypted whole, as it is added */
        uint8_t iv[BWV_CENC_IV_BYTES];

        uint8_t counter[16];

        put_iv(iv, AUDIO_TRACK_ID, m->audio_number + 1);
        counter_start(counter, iv);
        rc = bwv_aes128_ctr(m->cipher, counter, m->audio_data.data + m->audio_data.len, n);
        if (rc == BWV_MUX_OK)
            rc = aux_push(&m->audio_aux, &m->audio_aux_sizes, iv, sizeof iv);
        if (rc != BWV_MUX_OK) {
            m->audio.n--;  /* the sample is not added: the tables stay as they were */
            return rc;
        }
        m->audio_number++;
    }
    m->audio_data.len += n;
    return BWV_MUX_OK;
}

static int has_cto(const bwv_run *r)
{
    size_t k;

    for (k = 0; k < r->n; k++)
        if (r->ctos[k])
            return 1;
    return 0;
}

/* One size for every sample's auxiliary information (saiz's default), or 0 when they differ. */
static unsigned aux_default_size(const bwv_bytes *sizes)
{
    size_t k;

    for (k = 1; k < sizes->len; k++)
        if (sizes->data[k] != sizes->data[0])
            return 0;
    return sizes->len ? sizes->data[0] : 0;
}

/* saiz + saio + senc of one track (0 when not encrypting). */
static size_t aux_size(const bwv_mux *m, const bwv_bytes *aux, const bwv_bytes *sizes)
{
    if (!m->cipher)
        return 0;
    return (aux_default_size(sizes) ? 17 : 17 + sizes->len) + 20 + 16 + aux->len;
}

static size_t traf_size(const bwv_run *r, size_t per_sample, size_t aux)
{
    return r->n ? 8 + 16 + 20 + 20 + r->n * per_sample + aux : 0;
}

size_t bwv_mux_fragment_size(const bwv_mux *m, size_t *moof)
{
    size_t mdat = 8 + m->video_data.len + m->audio_data.len;

    *moof = 8 + 16
        + traf_size(&m->video, has_cto(&m->video) ? 16 : 12,
                    aux_size(m, &m->video_aux, &m->video_aux_sizes))
        + traf_size(&m->audio, 8, aux_size(m, &m->audio_aux, &m->audio_aux_sizes));
    if (mdat > MAX_MDAT - 8)
        return 0;
    return *moof + mdat;
}

/* saiz, saio (the offset of the first IV, from the moof at `moof_start`) and senc. */
static uint8_t *write_aux(uint8_t *o, const uint8_t *moof_start, const bwv_bytes *aux,
                          const bwv_bytes *sizes, uint32_t senc_flags)
{
    unsigned common = aux_default_size(sizes);

    o = put_type(put32(o, (uint32_t)(17 + (common ? 0 : sizes->len))), "saiz");
    o = put32(o, 0);
    *o++ = (uint8_t)common;
    o = put32(o, (uint32_t)sizes->len);
    if (!common) {
        memcpy(o, sizes->data, sizes->len);
        o += sizes->len;
    }
    o = put_type(put32(o, 20), "saio");
    /* the rest of saio is 12 bytes, then senc's header and sample count are 16 */
    const uint8_t *first_iv = o + 12 + 16;
    o = put32(put32(put32(o, 0), 1), (uint32_t)(first_iv - moof_start));
    o = put_type(put32(o, (uint32_t)(16 + aux->len)), "senc");
    o = put32(put32(o, senc_flags), (uint32_t)sizes->len);
    memcpy(o, aux->data, aux->len);
    return o + aux->len;
}

static uint8_t *write_traf(uint8_t *o, const bwv_run *r, uint32_t track_id, uint32_t trun_flags,
                           size_t per_sample, uint32_t data_offset, uint32_t last_ticks,
                           int video, size_t aux)
{
    size_t k, trun = 20 + r->n * per_sample;

    o = put_type(put32(o, (uint32_t)(8 + 16 + 20 + trun + aux)), "traf");
    o = put_type(put32(o, 16), "tfhd");
    o = put32(put32(o, TFHD_DEFAULT_BASE_IS_MOOF), track_id);
    o = put_type(put32(o, 20), "tfdt");
    o = put64(put32(o, 1u << 24), (uint64_t)r->ticks[0]);
    o = put_type(put32(o, (uint32_t)trun), "trun");
    o = put32(put32(put32(o, trun_flags), (uint32_t)r->n), data_offset);
    for (k = 0; k < r->n; k++) {
        o = put32(o, k + 1 < r->n ? (uint32_t)(r->ticks[k + 1] - r->ticks[k]) : last_ticks);
        o = put32(o, r->sizes[k]);
        if (video) {
            o = put32(o, r->keys[k] ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC);
            if (trun_flags & TRUN_CTO)
                o = put32(o, r->ctos[k]);
        }
    }
    return o;
}

/* Encrypt the protected ranges of the video samples written at `o` (in place), following the
 * subsamples their auxiliary information lists. A sample's protected ranges are one CTR stream;
 * each is a whole number of blocks, so the next one starts at a fresh counter block. */
static int encrypt_video(bwv_mux *m, uint8_t *o)
{
    const uint8_t *info = m->video_aux.data;
    uint8_t counter[16];
    size_t k, j, count, clear, protected_bytes;
    int rc;

    for (k = 0; k < m->video.n; k++) {
        counter_start(counter, info);
        count = (size_t)info[BWV_CENC_IV_BYTES] << 8 | info[BWV_CENC_IV_BYTES + 1];
        for (j = 0; j < count; j++) {
            const uint8_t *entry = info + BWV_CENC_IV_BYTES + 2 + 6 * j;
            clear = (size_t)entry[0] << 8 | entry[1];
            protected_bytes = (size_t)entry[2] << 24 | (size_t)entry[3] << 16
                | (size_t)entry[4] << 8 | entry[5];
            o += clear;
            if (protected_bytes) {
                rc = bwv_aes128_ctr(m->cipher, counter, o, protected_bytes);
                if (rc != BWV_MUX_OK)
                    return rc;
                counter_add(counter, protected_bytes / 16);
            }
            o += protected_bytes;
        }
        info += m->video_aux_sizes.data[k];
    }
    return BWV_MUX_OK;
}

int bwv_mux_write_fragment(bwv_mux *m, uint8_t *out, uint32_t sequence,
                           uint32_t last_video_ticks, uint32_t audio_frame_ticks)
{
    size_t moof, total = bwv_mux_fragment_size(m, &moof);
    int cto = has_cto(&m->video), rc = BWV_MUX_OK;
    size_t video_aux = aux_size(m, &m->video_aux, &m->video_aux_sizes);
    size_t audio_aux = aux_size(m, &m->audio_aux, &m->audio_aux_sizes);
    uint8_t *o = out, *video;
    size_t k;

    o = put_type(put32(o, (uint32_t)moof), "moof");
    o = put_type(put32(o, 16), "mfhd");
    o = put32(put32(o, 0), sequence);
    if (m->video.n) {
        o = write_traf(o, &m->video, VIDEO_TRACK_ID, cto ? TRUN_VIDEO | TRUN_CTO : TRUN_VIDEO,
                       cto ? 16 : 12, (uint32_t)(moof + 8), last_video_ticks, 1, video_aux);
        if (m->cipher)
            o = write_aux(o, out, &m->video_aux, &m->video_aux_sizes, 0x2);
    }
    if (m->audio.n) {
        o = write_traf(o, &m->audio, AUDIO_TRACK_ID, TRUN_AUDIO, 8,
                       (uint32_t)(moof + 8 + m->video_data.len), audio_frame_ticks, 0,
                       audio_aux);
        if (m->cipher)
            o = write_aux(o, out, &m->audio_aux, &m->audio_aux_sizes, 0);
    }
    o = put_type(put32(o, (uint32_t)(total - moof)), "mdat");
    video = o;
    for (k = 0; k < m->video_nal_count; k++) {
        o = put32(o, (uint32_t)m->video_nals[k].len);
        memcpy(o, m->video_nals[k].data, m->video_nals[k].len);
        o += m->video_nals[k].len;
    }
    if (m->cipher && m->video.n)
        rc = encrypt_video(m, video);
    if (m->audio_data.len)
        memcpy(o, m->audio_data.data, m->audio_data.len);
    m->video_nal_count = 0;
    m->video_data.len = m->audio_data.len = 0;
    m->video.n = m->audio.n = 0;
    m->video_aux.len = m->audio_aux.len = m->video_aux_sizes.len = m->audio_aux_sizes.len = 0;
    return rc;
}
