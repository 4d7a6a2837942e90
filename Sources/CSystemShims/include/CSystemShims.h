#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

#include <sys/types.h>
#include <sys/socket.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; hidden from Swift's Glibc module behind _GNU_SOURCE.
int cshim_accept_nonblocking(int fd, struct sockaddr *addr, socklen_t *len);

/// Number of open file descriptors of this process (counts /proc/self/fd), or -1.
int cshim_open_fd_count(void);

/// malloc_trim(0): hands the free memory at the top of glibc's heaps and arenas back to the system.
int cshim_malloc_trim(void);

#endif
