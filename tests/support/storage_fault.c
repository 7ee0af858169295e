/* A storage fault at the system-call level, for tests: LD_PRELOAD this into a recorder.
 *
 * While the file named by $BWV_FAULT_SWITCH exists, every call that would change a file whose
 * path contains $BWV_FAULT_PATH (open for writing, write, pwrite, fsync, fdatasync, ftruncate,
 * rename, mkdir) fails with errno $BWV_FAULT_ERRNO (e.g. 30 EROFS, as a card that went
 * read-only; 5 EIO, a failing card). Removing the switch file clears the fault, as re-inserting
 * a good card does. Reads never fail.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int active(const char *path) {
    const char *where = getenv("BWV_FAULT_PATH");
    const char *sw = getenv("BWV_FAULT_SWITCH");
    if (!where || !sw || !path || !strstr(path, where)) return 0;
    struct stat st;
    return stat(sw, &st) == 0;
}

static int fd_active(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return active(path);
}

static int fail(void) {
    const char *e = getenv("BWV_FAULT_ERRNO");
    errno = e ? atoi(e) : EIO;
    return -1;
}

#define REAL(name) \
    static __typeof__(&name) real = NULL; \
    if (!real) real = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

static int writing(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

int open(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    REAL(open);
    if (writing(flags) && active(path)) return fail();
    return real(path, flags, mode);
}
int open64(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    REAL(open64);
    if (writing(flags) && active(path)) return fail();
    return real(path, flags, mode);
}
int openat(int dir, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    REAL(openat);
    if (writing(flags) && active(path)) return fail();
    return real(dir, path, flags, mode);
}
int openat64(int dir, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    REAL(openat64);
    if (writing(flags) && active(path)) return fail();
    return real(dir, path, flags, mode);
}
ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    if (fd > 2 && fd_active(fd)) return fail();
    return real(fd, buf, n);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    if (fd_active(fd)) return fail();
    return real(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    if (fd_active(fd)) return fail();
    return real(fd, buf, n, off);
}
int fsync(int fd) {
    REAL(fsync);
    if (fd_active(fd)) return fail();
    return real(fd);
}
int fdatasync(int fd) {
    REAL(fdatasync);
    if (fd_active(fd)) return fail();
    return real(fd);
}
int ftruncate(int fd, off_t len) {
    REAL(ftruncate);
    if (fd_active(fd)) return fail();
    return real(fd, len);
}
int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64);
    if (fd_active(fd)) return fail();
    return real(fd, len);
}
int rename(const char *from, const char *to) {
    REAL(rename);
    if (active(from) || active(to)) return fail();
    return real(from, to);
}
int mkdir(const char *path, mode_t mode) {
    REAL(mkdir);
    if (active(path)) return fail();
    return real(path, mode);
}
