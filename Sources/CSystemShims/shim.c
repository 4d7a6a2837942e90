#define _GNU_SOURCE
#include "CSystemShims.h"
#include <dirent.h>
#include <stddef.h>

int cshim_accept_nonblocking(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cshim_open_fd_count(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(dir);
    return count - 1; // the directory stream's own fd
}

#include <malloc.h>

int cshim_malloc_trim(void) { return malloc_trim(0); }

#include <sys/resource.h>

long cshim_raise_open_files_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = {.rlim_cur = limit.rlim_max, .rlim_max = limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return limit.rlim_cur == RLIM_INFINITY ? -2 : (long)limit.rlim_cur;
}

#include <sys/epoll.h>
#include <errno.h>

int cshim_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cshim_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = {.events = events, .data = {.u64 = token}};
    return epoll_ctl(epfd, op, fd, &event);
}

static int unpack(const struct epoll_event *ready, int n, uint64_t *tokens, uint32_t *events) {
    for (int i = 0; i < n; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}

int cshim_epoll_poll(int epfd, uint64_t *tokens, uint32_t *events, int capacity) {
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    int n;
    do {
        n = epoll_wait(epfd, ready, capacity, 0);
    } while (n < 0 && errno == EINTR);
    return unpack(ready, n, tokens, events);
}

// Set once a kernel older than 5.11 has answered ENOSYS: every later wait returns 0 at once.
static _Atomic int epoll_pwait2_missing;

int cshim_epoll_wait_nanoseconds(int epfd, uint64_t *tokens, uint32_t *events, int capacity, long nanoseconds) {
    if (epoll_pwait2_missing) return 0;
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    struct timespec timeout = {.tv_sec = nanoseconds / 1000000000L, .tv_nsec = nanoseconds % 1000000000L};
    int n = epoll_pwait2(epfd, ready, capacity, &timeout, NULL);
    if (n < 0) {
        if (errno == ENOSYS) epoll_pwait2_missing = 1;
        return errno == EINTR || errno == ENOSYS ? 0 : -1;
    }
    return unpack(ready, n, tokens, events);
}

#include <sys/ioctl.h>
#include <linux/sockios.h>

int cshim_unacknowledged_bytes(int fd) {
    int n = 0;
    return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

#include <sys/eventfd.h>
#include <unistd.h>

int cshim_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cshim_eventfd_signal(int fd) {
    uint64_t one = 1;
    /* EAGAIN only when the counter would pass 2^64 - 2: the loop is woken already. */
    return write(fd, &one, sizeof one) == sizeof one || errno == EAGAIN ? 0 : -1;
}

void cshim_eventfd_drain(int fd) {
    uint64_t value;
    (void)!read(fd, &value, sizeof value);
}
