/* Pre-event ring buffer core. The rules, and the names, follow recorder/ring/_ring_py.py; the
 * payloads are the caller's (ring.h). */
#include "ring.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { VIDEO = 0, AUDIO = 1 };

/* Longest single wait of bwv_ring_peek: a deadline this far ahead fits any time_t, and a longer
 * timeout is waited out a day at a time. */
#define MAX_WAIT_S 86400.0

/* Whether n elements of `size` bytes can be counted in a size_t (1 if so). */
static int fits(size_t n, size_t size)
{
    return n <= SIZE_MAX / size;
}

int bwv_ring_init(bwv_ring *r, size_t cap, size_t nmax, int64_t seconds_us)
{
    pthread_condattr_t attr;

    memset(r, 0, sizeof *r);
    if (!fits(nmax, sizeof *r->pts) || !fits(nmax, sizeof *r->offs)
            || !fits(nmax, sizeof *r->lens) || !fits(nmax, sizeof *r->kseq))
        return BWV_ENOMEM;
    r->cap = cap;
    r->nmax = nmax;
    r->seconds_us = seconds_us;
    r->streams = malloc(nmax);
    r->keys = malloc(nmax);
    r->pts = malloc(nmax * sizeof *r->pts);
    r->offs = malloc(nmax * sizeof *r->offs);
    r->lens = malloc(nmax * sizeof *r->lens);
    r->kseq = malloc(nmax * sizeof *r->kseq);
    if (!r->streams || !r->keys || !r->pts || !r->offs || !r->lens || !r->kseq) {
        bwv_ring_free(r);
        return BWV_ENOMEM;
    }
    pthread_mutex_init(&r->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->readable, &attr);
    pthread_condattr_destroy(&attr);
    return BWV_OK;
}

void bwv_ring_free(bwv_ring *r)
{
    if (r->streams && r->keys && r->pts && r->offs && r->lens && r->kseq) {
        pthread_cond_destroy(&r->readable);
        pthread_mutex_destroy(&r->mutex);
    }
    free(r->streams);
    free(r->keys);
    free(r->pts);
    free(r->offs);
    free(r->lens);
    free(r->kseq);
    r->streams = r->keys = NULL;
    r->pts = NULL;
    r->offs = r->lens = NULL;
    r->kseq = NULL;
}

static void drop(bwv_ring *r, size_t n)
{
    if (r->consuming) {
        r->overrun_units++;
        r->overrun_bytes += n;
    } else {
        r->skipped_units++;
    }
}

/* Offset where n bytes fit contiguously without touching held AUs, or -1. */
static int64_t space_for(const bwv_ring *r, size_t n)
{
    size_t oldest, newest, end, j;

    if (r->tail == r->head)
        return 0;
    oldest = r->offs[r->head % r->nmax];
    j = (r->tail - 1) % r->nmax;
    newest = r->offs[j];
    end = newest + r->lens[j];
    if (newest >= oldest) {
        if (n <= r->cap - end)
            return (int64_t)end;
        return n <= oldest ? 0 : -1;
    }
    return n <= oldest - end ? (int64_t)end : -1;
}

static void evict_one(bwv_ring *r)
{
    uint64_t seq = r->head;
    size_t i = seq % r->nmax;
    size_t n = r->lens[i];

    if (r->streams[i] == VIDEO) {
        r->video_held--;
        if (r->keys[i])
            r->khead++;
        if (r->has_key_seq && seq >= r->last_key_seq)
            r->gop_open = 0;
    }
    r->head = seq + 1;
    r->held_bytes -= n;
    if (r->consuming) {
        r->overrun_units++;
        r->overrun_bytes += n;
    } else {
        r->evicted_units++;
        r->evicted_bytes += n;
    }
}

/* Seq of the first held keyframe after the oldest AU; 0 with *found = 0 if none. */
static uint64_t next_keyframe_after_head(const bwv_ring *r, int *found)
{
    uint64_t k = r->khead;

    if (k < r->ktail && r->kseq[k % r->nmax] == r->head)
        k++;
    *found = k < r->ktail;
    return *found ? r->kseq[k % r->nmax] : 0;
}

static void evict_group(bwv_ring *r)
{
    uint64_t stop;
    int found;

    if (r->video_held == 0) {
        evict_one(r);
        return;
    }
    stop = next_keyframe_after_head(r, &found);
    if (!found)
        stop = r->tail;
    while (r->head < stop)
        evict_one(r);
}

/* Buffering only: start at a keyframe, then keep at least `seconds` of video. */
static void age(bwv_ring *r)
{
    size_t nmax = r->nmax;

    if (r->khead < r->ktail) {
        uint64_t first_key = r->kseq[r->khead % nmax];
        int64_t newest = r->last_pts[VIDEO];
        while (r->head < first_key)
            evict_one(r);
        while (r->ktail - r->khead >= 2) {
            uint64_t second_key = r->kseq[(r->khead + 1) % nmax];
            if (newest - r->pts[second_key % nmax] < r->seconds_us)
                break;
            while (r->head < second_key)
                evict_one(r);
        }
    } else if (r->video_held) {
        while (r->tail > r->head)
            evict_one(r);
    } else {
        while (r->tail - r->head >= 2 && r->has_last[AUDIO]
               && r->last_pts[AUDIO] - r->pts[(r->head + 1) % nmax] >= r->seconds_us)
            evict_one(r);
    }
}

static int check_push(const bwv_ring *r, int stream, int64_t pts, size_t n, int64_t *last_pts)
{
    if (r->closed)
        return BWV_ECLOSED;
    if (stream != VIDEO && stream != AUDIO)
        return BWV_ESTREAM;
    if (n == 0)
        return BWV_EEMPTY;
    if (n > r->cap)
        return BWV_ETOOBIG;
    if (r->has_last[stream] && pts <= r->last_pts[stream]) {
        *last_pts = r->last_pts[stream];
        return BWV_EPTS;
    }
    return BWV_OK;
}

int bwv_ring_push(bwv_ring *r, int stream, int64_t pts, int key, size_t n, int64_t *last_pts,
                  uint64_t *seq_out, uint64_t *head)
{
    int rc, video_key = key && stream == VIDEO;
    int64_t offset;
    uint64_t seq;
    size_t i;

    pthread_mutex_lock(&r->mutex);
    rc = check_push(r, stream, pts, n, last_pts);
    if (rc != BWV_OK)
        goto out;
    r->last_pts[stream] = pts;
    r->has_last[stream] = 1;
    r->pushed_units++;
    r->pushed_bytes += n;
    if (stream == VIDEO && !video_key && !r->gop_open) {
        drop(r, n);
        rc = BWV_DROPPED;
        goto out;
    }
    for (;;) {
        offset = r->tail - r->head < r->nmax ? space_for(r, n) : -1;
        if (offset >= 0)
            break;
        evict_group(r);
        if (stream == VIDEO && !video_key && !r->gop_open) {
            drop(r, n);
            rc = BWV_DROPPED;
            goto out;
        }
    }
    seq = r->tail;
    *seq_out = seq;
    i = seq % r->nmax;
    r->streams[i] = (uint8_t)stream;
    r->keys[i] = key ? 1 : 0;
    r->pts[i] = pts;
    r->offs[i] = (size_t)offset;
    r->lens[i] = n;
    r->tail = seq + 1;
    r->held_bytes += n;
    if (stream == VIDEO) {
        r->video_held++;
        if (video_key) {
            r->kseq[r->ktail % r->nmax] = seq;
            r->ktail++;
            r->last_key_seq = seq;
            r->has_key_seq = 1;
            r->gop_open = 1;
        }
    }
    if (r->consuming) {
        if (r->waiters)
            pthread_cond_signal(&r->readable);
    } else {
        age(r);
    }
out:
    if (rc >= 0)
        *head = r->head;
    pthread_mutex_unlock(&r->mutex);
    return rc;
}

int bwv_ring_begin_consume(bwv_ring *r)
{
    int rc = BWV_OK;

    pthread_mutex_lock(&r->mutex);
    if (r->closed)
        rc = BWV_ECLOSED;
    else if (r->consuming)
        rc = BWV_ESTATE;
    else
        r->consuming = 1;
    pthread_mutex_unlock(&r->mutex);
    return rc;
}

int bwv_ring_end_consume(bwv_ring *r, uint64_t *head)
{
    int rc = BWV_OK;

    pthread_mutex_lock(&r->mutex);
    if (!r->consuming) {
        rc = BWV_ESTATE;
    } else {
        r->consuming = 0;
        age(r);
        *head = r->head;
    }
    pthread_mutex_unlock(&r->mutex);
    return rc;
}

static double monotonic_s(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Wait on r->readable (mutex held) until `end_s` on the monotonic clock, at most MAX_WAIT_S:
 * the deadline is built from a bounded number of seconds, so it never overflows time_t. */
static void wait_until(bwv_ring *r, double end_s)
{
    struct timespec deadline;
    double step = end_s - monotonic_s();
    time_t whole;

    if (step <= 0)
        return;
    if (step > MAX_WAIT_S)
        step = MAX_WAIT_S;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    whole = (time_t)step;
    deadline.tv_sec += whole;
    deadline.tv_nsec += (long)((step - (double)whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->readable, &r->mutex, &deadline);
}

/* Wait (mutex held) until an AU is held or the ring is closed, or timeout_s has passed:
 * forever when it is negative or NaN; any finite or infinite positive value is honoured. */
static void wait_readable(bwv_ring *r, double timeout_s)
{
    int forever = !(timeout_s >= 0);
    double end_s = forever ? 0 : monotonic_s() + timeout_s;

    r->waiters++;
    while (r->tail == r->head && !r->closed) {
        if (forever)
            pthread_cond_wait(&r->readable, &r->mutex);
        else if (monotonic_s() < end_s)
            wait_until(r, end_s);
        else
            break;
    }
    r->waiters--;
}

int bwv_ring_peek(bwv_ring *r, double timeout_s, uint64_t *seq, size_t *n)
{
    int rc = BWV_OK;

    pthread_mutex_lock(&r->mutex);
    if (!r->consuming) {
        rc = BWV_ESTATE;
        goto out;
    }
    if (r->tail == r->head && !r->closed && timeout_s != 0)
        wait_readable(r, timeout_s);
    if (r->tail == r->head) {
        rc = BWV_NONE;
        goto out;
    }
    *seq = r->head;
    *n = r->lens[r->head % r->nmax];
out:
    pthread_mutex_unlock(&r->mutex);
    return rc;
}

int bwv_ring_take(bwv_ring *r, uint64_t seq, size_t n, int *stream, int64_t *pts, int *key)
{
    size_t i;

    pthread_mutex_lock(&r->mutex);
    if (r->head != seq || r->tail == r->head || r->lens[seq % r->nmax] != n) {
        pthread_mutex_unlock(&r->mutex);
        return BWV_RETRY;
    }
    i = seq % r->nmax;
    *stream = r->streams[i];
    *pts = r->pts[i];
    *key = r->keys[i];
    if (*stream == VIDEO) {
        r->video_held--;
        if (*key)
            r->khead++;
    }
    r->head = seq + 1;
    r->held_bytes -= n;
    r->consumed_units++;
    r->consumed_bytes += n;
    pthread_mutex_unlock(&r->mutex);
    return BWV_OK;
}

void bwv_ring_close(bwv_ring *r)
{
    pthread_mutex_lock(&r->mutex);
    r->closed = 1;
    pthread_cond_broadcast(&r->readable);
    pthread_mutex_unlock(&r->mutex);
}

uint64_t bwv_ring_len(bwv_ring *r)
{
    uint64_t units;

    pthread_mutex_lock(&r->mutex);
    units = r->tail - r->head;
    pthread_mutex_unlock(&r->mutex);
    return units;
}

int bwv_ring_mode(bwv_ring *r)
{
    int mode;

    pthread_mutex_lock(&r->mutex);
    mode = (r->consuming ? BWV_MODE_CONSUMING : 0) | (r->closed ? BWV_MODE_CLOSED : 0);
    pthread_mutex_unlock(&r->mutex);
    return mode;
}

void bwv_ring_get_stats(bwv_ring *r, bwv_ring_stats *out)
{
    pthread_mutex_lock(&r->mutex);
    out->units = r->tail - r->head;
    out->bytes = r->held_bytes;
    out->video_units = r->video_held;
    out->keyframes = r->ktail - r->khead;
    out->span_us = out->units
        ? r->pts[(r->tail - 1) % r->nmax] - r->pts[r->head % r->nmax] : 0;
    out->pushed_units = r->pushed_units;
    out->pushed_bytes = r->pushed_bytes;
    out->consumed_units = r->consumed_units;
    out->consumed_bytes = r->consumed_bytes;
    out->evicted_units = r->evicted_units;
    out->evicted_bytes = r->evicted_bytes;
    out->skipped_units = r->skipped_units;
    out->overrun_units = r->overrun_units;
    out->overrun_bytes = r->overrun_bytes;
    pthread_mutex_unlock(&r->mutex);
}
