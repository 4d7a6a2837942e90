#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H
/* hiredis 0.14 (Debian 12). Only the blocking API is used; the variadic redisCommand is not importable, so
   callers use redisCommandArgv. The REDIS_REPLY_* and REDIS_ERR_* macros are plain integers and import as is. */
#include <sys/time.h>
#include <hiredis/hiredis.h>
#endif
