"""The muxer's C core encrypting ('cenc') under AddressSanitizer and UndefinedBehaviorSanitizer,
driven by a small C program: slices of every size around the 16-byte blocks, a clear run longer
than a subsample can count, audio, and a frame of too many slices, which must leave every table
as it was. What Python cannot see: reads or writes past a buffer, undefined arithmetic.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from test_native_c import CC, _build, _sanitizer_works

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine")

HARNESS = r"""
#include "mux.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t frame[200000];

/* An Annex B access unit: an SEI of `sei` bytes, then `slices` slices of `size` bytes. */
static size_t make(size_t sei, size_t slices, size_t size)
{
    size_t n = 0, k;

    if (sei) {
        memcpy(frame + n, "\0\0\1\6", 4);
        memset(frame + n + 4, 0x80, sei);
        n += 4 + sei;
    }
    for (k = 0; k < slices; k++) {
        memcpy(frame + n, "\0\0\1\x65", 4);
        memset(frame + n + 4, 0x11, size);
        n += 4 + size;
    }
    return n;
}

int main(void)
{
    static const uint8_t key[16] = {1, 2, 3};
    static const uint8_t audio[300] = {7};
    bwv_mux m;
    size_t n, moof, size, first = 0, aux, samples;
    uint8_t *out;
    int rc, fragment, tick = 0;

    bwv_mux_init(&m);
    if (bwv_mux_set_key(&m, key) != BWV_MUX_OK)
        return 2;
    for (fragment = 0; fragment < 40; fragment++) {
        n = make(fragment % 3 ? 0 : 70000 * (fragment % 2), 1 + fragment % 5, 1 + fragment * 7);
        if (bwv_mux_scan(&m, frame, n, &first) != BWV_MUX_OK)
            return 3;
        if (bwv_mux_add_video(&m, frame, tick++, 0, fragment == 0) != BWV_MUX_OK)
            return 4;
        if (bwv_mux_add_audio(&m, audio, 1 + fragment * 7, tick) != BWV_MUX_OK)
            return 5;
        if (fragment % 4 == 3) {
            size = bwv_mux_fragment_size(&m, &moof);
            out = malloc(size);
            rc = bwv_mux_write_fragment(&m, out, 1, 3000, 1024);
            free(out);
            if (rc != BWV_MUX_OK)
                return 6;
        }
    }
    n = make(0, 2, 50);  /* one frame pending, so that there are tables to keep */
    bwv_mux_scan(&m, frame, n, &first);
    if (bwv_mux_add_video(&m, frame, tick++, 0, 0) != BWV_MUX_OK)
        return 7;
    n = make(0, 60, 40);  /* too many slices: refused, and nothing of it kept */
    bwv_mux_scan(&m, frame, n, &first);
    aux = m.video_aux.len;
    samples = m.video.n;
    rc = bwv_mux_add_video(&m, frame, tick++, 0, 0);
    printf("rc=%d kept=%d\n", rc, aux > 0 && aux == m.video_aux.len && samples == m.video.n);
    size = bwv_mux_fragment_size(&m, &moof);
    out = malloc(size);
    bwv_mux_write_fragment(&m, out, 2, 3000, 1024);
    free(out);
    bwv_mux_free(&m);
    return rc == BWV_MUX_ESUBSAMPLES ? 0 : 1;
}
"""


def test_the_encrypting_core_is_clean_under_address_and_undefined_sanitizers(
        tmp_path: Path) -> None:
    if not _sanitizer_works(tmp_path, "address,undefined"):
        pytest.skip("AddressSanitizer and UndefinedBehaviorSanitizer do not link or run here")
    program = _build(tmp_path, "mux_cenc", HARNESS, ["mux.c"],
                     ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
    assert not isinstance(program, str), program
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.strip() == "rc=-7 kept=1"
