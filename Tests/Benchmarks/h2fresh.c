/*
 * h2fresh: HTTP/2 load with a token never sent before on every request, for the fresh-token rows over HTTP/2.
 *
 * h2load sends the same headers on every request of a process, so it cannot measure a proxy that verifies a new
 * token each time; wrk can (lua/tokens.lua) but speaks HTTP/1.1 only. This is the missing third: one thread,
 * CONNS TLS connections with ALPN h2, STREAMS requests in flight on each, every request a GET with
 * "authorization: Bearer <next token of FILE>", until the tokens run out or DURATION seconds pass.
 *
 *   h2fresh HOST PORT AUTHORITY PATH TOKENS_FILE CONNS STREAMS DURATION [ORIGIN]
 *
 * Prints wrk's summary lines that bench.py parses: "N requests in Ss", "Requests/sec:", the 50% and 99%
 * latencies, "statuses: 200=N ...", "active: S" (first request to last response). Loopback only (HOST is an
 * address); the certificate is not verified (the benchmark's is self-signed). Built by run.sh and ab.py with
 * `cc -O2 h2fresh.c -lnghttp2 -lssl -lcrypto`. Exits 1 when a connection fails before the run.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_STREAMS 1024

struct conn {
    int fd;
    SSL *ssl;
    nghttp2_session *session;
    int in_flight;
    int wants_write;
    /* Bytes nghttp2 produced that TLS has not taken yet (SSL_write wants the same buffer again on retry). */
    uint8_t *pending;
    size_t pending_len, pending_cap;
    int dead;
};

struct stream {
    int64_t start_ns;
    int status;
};

static char **tokens;   /* "Bearer <token>", one per request */
static size_t token_count, next_token;
static const char *authority, *path, *origin;
static int64_t deadline_ns, first_ns, last_ns;
static uint32_t *latencies_us;
static size_t answered;
static size_t status_counts[600];
static int epfd;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "h2fresh: %s\n", what);
    exit(1);
}

static void load_tokens(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) die("cannot open the tokens file");
    size_t cap = 1024;
    tokens = malloc(cap * sizeof *tokens);
    char *line = NULL;
    size_t n = 0;
    ssize_t len;
    while ((len = getline(&line, &n, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (token_count == cap) tokens = realloc(tokens, (cap *= 2) * sizeof *tokens);
        char *t = malloc((size_t)len + 8);
        memcpy(t, "Bearer ", 7);
        memcpy(t + 7, line, (size_t)len + 1);
        tokens[token_count++] = t;
    }
    free(line);
    fclose(f);
    if (token_count == 0) die("no tokens in the tokens file");
}

#define NV(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}

static int submit_next(struct conn *c) {
    if (next_token >= token_count || now_ns() >= deadline_ns) return 0;
    const char *token = tokens[next_token++];
    struct stream *s = malloc(sizeof *s);
    s->start_ns = now_ns();
    s->status = 0;
    if (first_ns == 0) first_ns = s->start_ns;
    nghttp2_nv nva[6] = {
        NV(":method", "GET", 3),
        NV(":scheme", "https", 5),
        NV(":authority", authority, strlen(authority)),
        NV(":path", path, strlen(path)),
        NV("authorization", token, strlen(token)),
        NV("origin", origin ? origin : "", origin ? strlen(origin) : 0),
    };
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, origin ? 6 : 5, NULL, s);
    if (id < 0) {
        free(s);
        return 0;
    }
    c->in_flight++;
    return 1;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user) {
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0) return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s && valuelen == 3) s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static int on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user) {
    struct conn *c = user;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s) return 0;
    int64_t t = now_ns();
    last_ns = t;
    int status = error_code == 0 && s->status >= 100 && s->status < 600 ? s->status : 0;
    status_counts[status]++;
    if (answered < token_count) latencies_us[answered] = (uint32_t)((t - s->start_ns) / 1000);
    answered++;
    free(s);
    c->in_flight--;
    submit_next(c);
    return 0;
}

static void set_events(struct conn *c, int want_write) {
    if (c->wants_write == want_write) return;
    c->wants_write = want_write;
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Hands nghttp2's output to TLS until either runs dry; EPOLLOUT only while TLS cannot take more. */
static void flush(struct conn *c) {
    for (;;) {
        if (c->pending_len == 0) {
            const uint8_t *data;
            ssize_t n;
            while ((n = nghttp2_session_mem_send(c->session, &data)) > 0) {
                if (c->pending_len + (size_t)n > c->pending_cap) {
                    c->pending_cap = (c->pending_len + (size_t)n) * 2;
                    c->pending = realloc(c->pending, c->pending_cap);
                }
                memcpy(c->pending + c->pending_len, data, (size_t)n);
                c->pending_len += (size_t)n;
                if (c->pending_len >= 16384) break;
            }
            if (n < 0) {
                c->dead = 1;
                return;
            }
            if (c->pending_len == 0) {
                set_events(c, 0);
                return;
            }
        }
        int w = SSL_write(c->ssl, c->pending, (int)c->pending_len);
        if (w <= 0) {
            int e = SSL_get_error(c->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                set_events(c, 1);
                return;
            }
            c->dead = 1;
            return;
        }
        memmove(c->pending, c->pending + w, c->pending_len - (size_t)w);
        c->pending_len -= (size_t)w;
    }
}

static void readable(struct conn *c) {
    uint8_t buf[32768];
    for (;;) {
        int r = SSL_read(c->ssl, buf, sizeof buf);
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) c->dead = 1;
            break;
        }
        if (nghttp2_session_mem_recv(c->session, buf, (size_t)r) < 0) {
            c->dead = 1;
            break;
        }
    }
}

static struct conn *open_conn(SSL_CTX *ctx, const struct sockaddr_in *addr, int streams) {
    struct conn *c = calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) != 0) die("connect failed");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, authority);
    /* The handshake is blocking (before the clock starts); the run is not. */
    if (SSL_connect(c->ssl) != 1) die("TLS handshake failed");
    const unsigned char *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) die("the server did not select h2");
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    /* Response bodies are dropped as they come; nghttp2 gives the window back on its own. */
    nghttp2_session_client_new(&c->session, cb, c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)streams},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 16 << 20);

    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return c;
}

static int by_value(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 9 || argc > 10) {
        fprintf(stderr, "usage: h2fresh HOST PORT AUTHORITY PATH TOKENS_FILE CONNS STREAMS DURATION [ORIGIN]\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) die("HOST must be an IPv4 address");
    authority = argv[3];
    path = argv[4];
    load_tokens(argv[5]);
    int conns = atoi(argv[6]), streams = atoi(argv[7]), duration = atoi(argv[8]);
    origin = argc == 10 && strcmp(argv[9], "-") != 0 ? argv[9] : NULL;
    if (conns < 1 || conns > MAX_CONNS || streams < 1 || streams > MAX_STREAMS || duration < 1)
        die("CONNS 1-1024, STREAMS 1-1024, DURATION >= 1");
    latencies_us = malloc(token_count * sizeof *latencies_us);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    static const unsigned char h2[] = "\x02h2";
    SSL_CTX_set_alpn_protos(ctx, h2, 3);
    epfd = epoll_create1(0);
    struct conn *all[MAX_CONNS];
    for (int i = 0; i < conns; i++) all[i] = open_conn(ctx, &addr, streams);

    int64_t start = now_ns();
    deadline_ns = start + (int64_t)duration * 1000000000;
    /* In-flight streams get this long after the deadline to finish; any still open count as failed. */
    int64_t hard_stop = deadline_ns + 10000000000LL;
    for (int i = 0; i < conns; i++) {
        for (int s = 0; s < streams; s++) submit_next(all[i]);
        flush(all[i]);
    }
    struct epoll_event events[MAX_CONNS];
    for (;;) {
        int open_streams = 0, live = 0;
        for (int i = 0; i < conns; i++)
            if (!all[i]->dead) {
                live++;
                open_streams += all[i]->in_flight;
            }
        if (live == 0 || (open_streams == 0 && (next_token >= token_count || now_ns() >= deadline_ns))) break;
        if (now_ns() >= hard_stop) break;
        int n = epoll_wait(epfd, events, MAX_CONNS, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->dead) continue;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c);
            if (!c->dead) flush(c);
            if (c->dead) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                status_counts[0] += (size_t)c->in_flight;
                c->in_flight = 0;
            }
        }
    }
    double wall = (double)(now_ns() - start) / 1e9;
    double active = last_ns > first_ns ? (double)(last_ns - first_ns) / 1e9 : wall;
    size_t done = answered < token_count ? answered : token_count;
    qsort(latencies_us, done, sizeof *latencies_us, by_value);
    size_t non2xx = 0;
    for (int s = 0; s < 600; s++)
        if (status_counts[s] && (s < 200 || s >= 400)) non2xx += status_counts[s];
    printf("%zu requests in %.2fs\n", answered, active);
    printf("Latency Distribution\n");
    if (done) {
        printf("     50%% %.2fms\n", latencies_us[done / 2] / 1000.0);
        printf("     99%% %.2fms\n", latencies_us[(size_t)(done * 0.99) < done ? (size_t)(done * 0.99) : done - 1] / 1000.0);
    }
    printf("Requests/sec: %.2f\n", active > 0 ? (double)answered / active : 0.0);
    if (non2xx) printf("Non-2xx or 3xx responses: %zu\n", non2xx);
    printf("statuses:");
    for (int s = 0; s < 600; s++)
        if (status_counts[s]) printf(" %d=%zu", s, status_counts[s]);
    printf("\nactive: %.3f\n", active);
    printf("tokens used: %zu of %zu\n", next_token, token_count);
    return 0;
}
