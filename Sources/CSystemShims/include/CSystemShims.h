#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

#include <sys/types.h>
#include <sys/socket.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; hidden from Swift's Glibc module behind _GNU_SOURCE.
int cshim_accept_nonblocking(int fd, struct sockaddr *addr, socklen_t *len);

/// Number of open file descriptors of this process (counts /proc/self/fd), or -1.
int cshim_open_fd_count(void);

/// Bytes of a TCP socket's send queue its peer has not acknowledged yet (SIOCOUTQ), or -1.
int cshim_unacknowledged_bytes(int fd);

/// malloc_trim(0): hands the free memory at the top of glibc's heaps and arenas back to the system.
int cshim_malloc_trim(void);

/// Raises the soft RLIMIT_NOFILE to the hard limit where it is lower; returns the soft limit now in force, -2 when
/// unlimited, -1 when it cannot be read.
long cshim_raise_open_files_limit(void);

#include <stdint.h>
#include <time.h>

/// CLOCK_MONOTONIC in nanoseconds: the one reader every module's deadlines and timings share. Inline, so a hot
/// path (the poller's yields) pays the vDSO call and nothing more.
static inline int64_t cshim_monotonic_nanoseconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/// epoll_create1(EPOLL_CLOEXEC).
int cshim_epoll_create(void);

/// epoll_ctl with a 64-bit token as the event's data. `op` is EPOLL_CTL_ADD (1), DEL (2) or MOD (3).
int cshim_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);

/// epoll_wait without blocking, unpacked into parallel arrays: struct epoll_event is packed on x86-64, a layout
/// Swift should not have to mirror. Returns the number of events, or -1.
int cshim_epoll_poll(int epfd, uint64_t *tokens, uint32_t *events, int capacity);

/// Like cshim_epoll_poll, but waits up to `nanoseconds` for a first event (epoll_pwait2: epoll_wait counts in
/// milliseconds). Returns 0 on timeout or interruption, and at once on kernels without epoll_pwait2 (before 5.11).
int cshim_epoll_wait_nanoseconds(int epfd, uint64_t *tokens, uint32_t *events, int capacity, long nanoseconds);

/// A non-blocking, close-on-exec eventfd (counter 0): another thread's wake-up of a loop through its epoll set.
int cshim_eventfd(void);

/// Adds 1 to an eventfd's counter. Returns 0, or -1 with errno set.
int cshim_eventfd_signal(int fd);

/// Reads and so resets an eventfd's counter (nothing when it is 0).
void cshim_eventfd_drain(int fd);

#define CSHIM_EPOLLIN 0x001u
#define CSHIM_EPOLLOUT 0x004u
#define CSHIM_EPOLLERR 0x008u
#define CSHIM_EPOLLHUP 0x010u

#endif
