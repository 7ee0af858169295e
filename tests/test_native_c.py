"""The C cores (native/*.c) driven directly by small C programs, for what Python cannot reach.

Each test compiles native/<piece>.c with a harness of a few lines and runs it: a malloc that
pretends to be a 32-bit machine's (for the ring's size arithmetic), ThreadSanitizer (for the
SHA-256 dispatch chosen on first use) and UndefinedBehaviorSanitizer (for the muxer's copies).
They need a C compiler, and the sanitizer runtimes where named; without them they are skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native"
CC = shutil.which("cc") or shutil.which("gcc")
FLAGS = ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         f"-I{NATIVE}"]

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine")


def _build(tmp_path: Path, name: str, harness: str, sources: list[str],
           extra: list[str]) -> Path | str:
    """Compile harness + native sources; the program's path, or the compiler's complaint."""
    main = tmp_path / f"{name}.c"
    main.write_text(harness)
    program = tmp_path / name
    libraries = ["-lcrypto"] if "mux.c" in sources else []  # the muxer encrypts with libcrypto
    command = [str(CC), *FLAGS, *extra, "-o", str(program), str(main),
               *(str(NATIVE / source) for source in sources), *libraries, "-lpthread"]
    built = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return program if built.returncode == 0 else built.stderr


def _sanitizer_works(tmp_path: Path, flag: str) -> bool:
    """Whether this compiler links and runs a program with -fsanitize=<flag> here."""
    program = _build(tmp_path, f"probe_{flag}", "int main(void) { return 0; }\n", [],
                     [f"-fsanitize={flag}"])
    if isinstance(program, str):
        return False
    return subprocess.run([str(program)], capture_output=True, timeout=60).returncode == 0


RING_OVERFLOW_HARNESS = r"""
#include "ring.h"

#include <stdint.h>
#include <stdio.h>

/* A malloc that grants every request, as a 32-bit machine's would for the small byte counts that
 * a wrapped multiplication produces. Nothing is written through these pointers by init. */
static unsigned char granted[64];
static size_t smallest = SIZE_MAX;
void __real_free(void *p);

void *__wrap_malloc(size_t n)
{
    if (n < smallest)
        smallest = n;
    return granted;
}

void __wrap_free(void *p)
{
    if (p != granted)
        __real_free(p);
}

static int refused(size_t cap, size_t nmax)
{
    bwv_ring r;
    int rc = bwv_ring_init(&r, cap, nmax, 0);

    printf("cap=%zu nmax=%zu rc=%d smallest malloc=%zu\n", cap, nmax, rc, smallest);
    if (rc == BWV_OK)
        bwv_ring_free(&r);
    return rc == BWV_ENOMEM;
}

int main(void)
{
    size_t widest = sizeof(uint64_t) > sizeof(size_t) ? sizeof(uint64_t) : sizeof(size_t);
    int ok = refused(16, SIZE_MAX / widest + 1)    /* nmax * 8 wraps to 0 on a 64-bit size_t */
        && refused(16, SIZE_MAX / widest + 2)      /* ... to 8 */
        && refused(16, SIZE_MAX);
    return ok ? 0 : 1;
}
"""


def test_ring_refuses_a_unit_count_whose_byte_count_overflows(tmp_path: Path) -> None:
    program = _build(tmp_path, "ring_overflow", RING_OVERFLOW_HARNESS, ["ring.c"],
                     ["-Wl,--wrap=malloc", "-Wl,--wrap=free"])
    assert not isinstance(program, str), program
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"bwv_ring_init accepted a wrapped size:\n{run.stdout}"


SHA256_THREADS_HARNESS = r"""
#include "sha256.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { THREADS = 8 };
static pthread_barrier_t start;
static const uint8_t abc_digest[4] = {0xba, 0x78, 0x16, 0xbf};

/* Every thread's first call into the library comes at once, so the block function is chosen
 * while others hash: the dispatch must be safe without any earlier call. */
static void *work(void *arg)
{
    bwv_sha256 h;
    uint8_t out[32];
    const char *name;
    long index = (long)arg;

    pthread_barrier_wait(&start);
    if (index == 0)
        bwv_sha256_force_portable(0);
    bwv_sha256_init(&h);
    bwv_sha256_update(&h, (const uint8_t *)"abc", 3);
    bwv_sha256_digest(&h, out);
    name = bwv_sha256_acceleration();
    return (void *)(long)(name != NULL && name[0] != '\0' && memcmp(out, abc_digest, 4) == 0);
}

int main(void)
{
    pthread_t threads[THREADS];
    void *ok;
    long i;
    int good = 1;

    pthread_barrier_init(&start, NULL, THREADS);
    for (i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, work, (void *)i);
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], &ok);
        good &= ok != NULL;
    }
    printf("%s\n", bwv_sha256_acceleration());
    return good ? 0 : 1;
}
"""


def test_sha256_dispatch_is_chosen_safely_by_racing_first_calls(tmp_path: Path) -> None:
    """ThreadSanitizer sees no data race when threads make the first SHA-256 calls together."""
    if not _sanitizer_works(tmp_path, "thread"):
        pytest.skip("ThreadSanitizer does not link or run here")
    program = _build(tmp_path, "sha256_threads", SHA256_THREADS_HARNESS, ["sha256.c"],
                     ["-fsanitize=thread"])
    assert not isinstance(program, str), program
    for _ in range(3):
        run = subprocess.run([str(program)], capture_output=True, text=True, timeout=120,
                             env={"TSAN_OPTIONS": "halt_on_error=1 exitcode=66"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.strip() in ("sha-ni", "armv8-ce", "portable")


MUX_EMPTY_AUDIO_HARNESS = r"""
#include "mux.h"

#include <stdio.h>

int main(void)
{
    bwv_mux m;
    static const uint8_t nothing[1];
    size_t samples;
    int rc;

    bwv_mux_init(&m);
    rc = bwv_mux_add_audio(&m, nothing, 0, 0);   /* before any audio buffer exists */
    samples = m.audio.n;
    printf("rc=%d samples=%zu bytes=%zu\n", rc, samples, m.audio_data.len);
    bwv_mux_free(&m);
    return rc == BWV_MUX_EEMPTY && samples == 0 ? 0 : 1;
}
"""


def test_mux_refuses_an_empty_audio_sample_without_undefined_behaviour(tmp_path: Path) -> None:
    """An empty audio sample is refused by the C core too (it once did memcpy to NULL)."""
    if not _sanitizer_works(tmp_path, "undefined"):
        pytest.skip("UndefinedBehaviorSanitizer does not link or run here")
    program = _build(tmp_path, "mux_empty_audio", MUX_EMPTY_AUDIO_HARNESS, ["mux.c"],
                     ["-fsanitize=undefined", "-fno-sanitize-recover=all"])
    assert not isinstance(program, str), program
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
