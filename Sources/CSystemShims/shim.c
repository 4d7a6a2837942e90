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
