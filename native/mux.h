/* Fragmented-MP4 muxer core: the hot path of the C twin of recorder/storage/_mux_py.py (read that file for
 * the rules). Annex B scanning and conversion to length-prefixed NAL units, the sample tables of
 * one fragment, and the moof+mdat writer. The state machine (cuts, timestamps) is
 * recorder/storage/_mux_rules.py, shared with the pure twin and compiled into native/_mux_c.pyx;
 * nothing here touches Python, so every function may run without the GIL.
 */
#ifndef BWV_MUX_H
#define BWV_MUX_H

#include <stddef.h>
#include <stdint.h>

enum {
    BWV_MUX_OK = 0,
    BWV_MUX_ENOSTART = -1,  /* no start code in the payload */
    BWV_MUX_ELEADING = -2,  /* non-zero bytes before the first start code */
    BWV_MUX_ENONAL = -3,    /* start codes but no NAL unit */
    BWV_MUX_ENOMEM = -4,
    BWV_MUX_ETOOBIG = -5,   /* the fragment's mdat would not fit a 32-bit size */
    BWV_MUX_EEMPTY = -6,    /* an audio sample of no bytes */
    BWV_MUX_ESUBSAMPLES = -7, /* an encrypted video sample of more than BWV_CENC_MAX_SUBSAMPLES */
    BWV_MUX_ECRYPTO = -8    /* libcrypto refused the key or the cipher */
};

/* ISO Common Encryption 'cenc' (see recorder/storage/_mux_cenc.py for the layout and IVs). */
#define BWV_CENC_IV_BYTES 8
#define BWV_CENC_MAX_CLEAR 0xFFFFu
#define BWV_CENC_MAX_SUBSAMPLES ((255 - BWV_CENC_IV_BYTES - 2) / 6)

typedef struct {
    uint8_t *data;
    size_t len, cap;
} bwv_bytes;

typedef struct {
    int64_t *ticks;   /* decode time of each sample, track timescale */
    uint32_t *sizes;
    uint32_t *ctos;   /* composition offset (video) */
    uint8_t *keys;
    size_t n, cap;
} bwv_run;

typedef struct {
    const uint8_t *data;  /* inside an access unit the caller keeps alive until the write */
    size_t len;
} bwv_nal;

typedef struct {
    /* The fragment's mdat payload. Video NAL units are not copied until the fragment is written
     * (the caller keeps their access units alive): one copy from access unit to output. */
    bwv_nal *video_nals;
    size_t video_nal_count, video_nal_cap;
    bwv_bytes video_data;              /* only .len is used: bytes of the video samples */
    bwv_bytes audio_data;
    bwv_run video, audio;
    size_t *nals;                      /* (start, end) pairs of the last scanned access unit */
    size_t nal_count, nal_cap;
    /* Encryption, when bwv_mux_set_key was called: cipher is a bwv_aes128_new context. Each
     * sample's auxiliary information (IV, then for video its subsamples) is kept as senc holds
     * it, one size byte per sample beside it; video is encrypted as the fragment is written,
     * audio as it is added. */
    void *cipher;
    uint64_t video_number, audio_number;  /* samples of each track so far: the IVs */
    bwv_bytes video_aux, audio_aux, video_aux_sizes, audio_aux_sizes;
} bwv_mux;

/* AES-128-CTR through OpenSSL's libcrypto: the one routine the muxer encrypts with, also
 * recorder.storage._mux_c.Aes128Ctr. A context holds one key (expanded once); it is used by one
 * thread at a time. bwv_aes128_new returns NULL when libcrypto cannot make it. */
void *bwv_aes128_new(const uint8_t *key);
void bwv_aes128_free(void *aes);  /* NULL: nothing */

/* Encrypt (or decrypt, the same operation) the n bytes at buf in place as one CTR stream whose
 * first counter block is iv16, incremented as a 128-bit big-endian number for each 16 bytes.
 * BWV_MUX_OK, or BWV_MUX_ECRYPTO if libcrypto failed. */
int bwv_aes128_ctr(void *aes, const uint8_t *iv16, uint8_t *buf, size_t n);

void bwv_mux_init(bwv_mux *m);
void bwv_mux_free(bwv_mux *m);

/* Encrypt every sample from now on with the 16-byte AES-128 key ('cenc'). */
int bwv_mux_set_key(bwv_mux *m, const uint8_t *key);

/* Find the NAL units of an Annex B access unit into m->nals. On BWV_MUX_ELEADING, *first holds
 * the offset of the first start code. */
int bwv_mux_scan(bwv_mux *m, const uint8_t *p, size_t n, size_t *first);

/* Append the NAL units found by the last bwv_mux_scan of p as one video sample (each will get a
 * 4-byte length). p must stay alive and unchanged until the next bwv_mux_write_fragment. */
int bwv_mux_add_video(bwv_mux *m, const uint8_t *p, int64_t ticks, uint32_t cto, int key);

/* Append one audio sample of n >= 1 bytes (BWV_MUX_EEMPTY for none, as the ring refuses it). */
int bwv_mux_add_audio(bwv_mux *m, const uint8_t *p, size_t n, int64_t ticks);

/* Bytes of the pending fragment (moof + mdat); *moof receives the moof's size. 0 on overflow. */
size_t bwv_mux_fragment_size(const bwv_mux *m, size_t *moof);

/* Write the pending fragment (exactly bwv_mux_fragment_size bytes) to out and empty it;
 * BWV_MUX_ECRYPTO if libcrypto failed to encrypt (the fragment is then not usable). */
int bwv_mux_write_fragment(bwv_mux *m, uint8_t *out, uint32_t sequence,
                           uint32_t last_video_ticks, uint32_t audio_frame_ticks);

#endif
