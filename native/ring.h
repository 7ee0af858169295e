/* Pre-event ring buffer core: the C twin of recorder/ring/_ring_py.py (read that file for the rules).
 *
 * The core keeps the ring's order, accounting and eviction; it holds no payload. Each stored AU
 * is known by its seq (counting every AU ever stored): the caller keeps the payload of AU `seq`
 * in its own slot `seq % nmax`, stores it when push returns BWV_OK with that seq, and lets go of
 * every payload below the head that push, end_consume and take report (those were evicted or
 * taken). Every function that takes a bwv_ring locks its mutex itself and never touches Python,
 * so the Cython wrapper (native/_ring_c.pyx) may call any of them with the GIL released.
 */
#ifndef BWV_RING_H
#define BWV_RING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum {
    BWV_OK = 0,
    BWV_DROPPED = 1,      /* accepted, but dropped: video with no open GOP */
    BWV_ECLOSED = -1,
    BWV_ESTREAM = -2,
    BWV_EEMPTY = -3,
    BWV_ETOOBIG = -4,
    BWV_EPTS = -5,
    BWV_ENOMEM = -6,
    BWV_ESTATE = -7,      /* begin while consuming, end/pop while not consuming */
    BWV_NONE = -8,        /* pop: nothing to take (timeout, or closed and empty) */
    BWV_RETRY = -9        /* pop_into: the AU peeked at is gone; peek again */
};

typedef struct {
    uint64_t units, bytes, video_units, keyframes;
    int64_t span_us;
    uint64_t pushed_units, pushed_bytes, consumed_units, consumed_bytes;
    uint64_t evicted_units, evicted_bytes, skipped_units, overrun_units, overrun_bytes;
} bwv_ring_stats;

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t readable;
    int waiters;

    size_t cap;           /* bytes held at most: the size of the arena the places are laid in */
    size_t nmax;
    int64_t seconds_us;

    /* per-AU metadata, indexed by seq % nmax */
    uint8_t *streams;
    uint8_t *keys;
    int64_t *pts;
    size_t *offs;         /* the payload's place in an arena laid out, never allocated */
    size_t *lens;
    /* seqs of held video keyframes, indexed by k % nmax */
    uint64_t *kseq;
    uint64_t khead, ktail;

    uint64_t head, tail;
    int64_t last_pts[2];
    int has_last[2];
    int gop_open;
    int has_key_seq;
    uint64_t last_key_seq;
    uint64_t video_held;
    uint64_t held_bytes;
    int consuming;
    int closed;

    uint64_t pushed_units, pushed_bytes, consumed_units, consumed_bytes;
    uint64_t evicted_units, evicted_bytes, skipped_units, overrun_units, overrun_bytes;
} bwv_ring;

/* BWV_ENOMEM when an allocation fails or nmax per-AU entries would not fit a size_t. */
int bwv_ring_init(bwv_ring *r, size_t cap, size_t nmax, int64_t seconds_us);
void bwv_ring_free(bwv_ring *r);

/* Account for one AU of n bytes. Returns BWV_OK (stored as AU *seq: the caller keeps its
 * payload), BWV_DROPPED, or a negative error (nothing changed); *last_pts receives the previous
 * pts of the stream when BWV_EPTS is returned. *head receives the oldest held seq after the call
 * on BWV_OK and BWV_DROPPED: the payloads of seqs below it are gone. */
int bwv_ring_push(bwv_ring *r, int stream, int64_t pts, int key, size_t n, int64_t *last_pts,
                  uint64_t *seq, uint64_t *head);

int bwv_ring_begin_consume(bwv_ring *r);
/* *head receives the oldest held seq after the AUs not taken were aged (on BWV_OK). */
int bwv_ring_end_consume(bwv_ring *r, uint64_t *head);

/* Wait up to timeout_s (< 0 or NaN: forever; 0: not at all; any larger value, even +inf, is
 * waited out a day at a time) until an AU is held or the ring is closed. Returns BWV_OK with the
 * oldest AU's seq and size, BWV_NONE, or BWV_ESTATE. */
int bwv_ring_peek(bwv_ring *r, double timeout_s, uint64_t *seq, size_t *n);

/* Take AU `seq` (of size n, from bwv_ring_peek): the head moves past it, the caller hands its
 * payload on. BWV_RETRY if it is gone. */
int bwv_ring_take(bwv_ring *r, uint64_t seq, size_t n, int *stream, int64_t *pts, int *key);

void bwv_ring_close(bwv_ring *r);
void bwv_ring_get_stats(bwv_ring *r, bwv_ring_stats *out);

/* Units held, read under the lock (64-bit head and tail tear on 32-bit CPUs without it). */
uint64_t bwv_ring_len(bwv_ring *r);

/* BWV_MODE_CONSUMING and BWV_MODE_CLOSED bits, read under the lock. */
enum { BWV_MODE_CONSUMING = 1, BWV_MODE_CLOSED = 2 };
int bwv_ring_mode(bwv_ring *r);

#endif
