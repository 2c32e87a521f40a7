/*
 * fcgi_floor: the smallest FastCGI responder we can write, on plain epoll.
 *
 * It is the "floor" of the ringfast benchmark: how little a server can spend per FastCGI request on
 * this machine. It answers every request (any request id, multiplexed or not, KEEP_CONN or not) with
 * a canned response:
 *
 *     Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!
 *
 * It parses the record stream properly (PARAMS and STDIN contents are skipped, records may be split
 * anywhere across reads), answers once the empty STDIN record of a request arrives, answers
 * FCGI_GET_VALUES and ABORT_REQUEST, and closes the connection after the response of a request whose
 * BEGIN_REQUEST did not set FCGI_KEEP_CONN. One thread, level-triggered epoll, responses batched per
 * read and written with one write().
 *
 * Usage:  fcgi_floor HOST:PORT | unix:/path.sock
 * Prints "listening on HOST:PORT" (the actual port when PORT is 0) or "listening on unix:PATH" on
 * stdout once ready. SIGTERM/SIGINT exit 0 (the Unix socket file is removed).
 *
 * Build:  gcc -O2 -Wall -Wextra -o fcgi_floor fcgi_floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
};

#define FCGI_KEEP_CONN 1
#define IN_BUF 16384
#define OUT_MAX (1 << 20)

static const char BODY[] =
    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
#define BODY_LEN (sizeof(BODY) - 1)

/* The whole answer to one request: STDOUT(body), STDOUT(empty), END_REQUEST(0, COMPLETE). The
 * request id bytes (offsets 2-3 of each of the three headers) are patched per request. */
static unsigned char canned[8 + BODY_LEN + 8 + 16];
static size_t canned_len;

struct conn {
    int fd;
    unsigned char in[IN_BUF];
    size_t in_len;
    /* Bytes of the current record's content+padding still to skip (PARAMS/STDIN/unknown). */
    size_t skip;
    unsigned char *out;
    size_t out_len, out_cap;
    int close_after_flush; /* a request without KEEP_CONN was answered */
    int want_out;          /* EPOLLOUT registered */
    /* Request ids whose BEGIN_REQUEST cleared KEEP_CONN: a tiny set, almost always empty or one. */
    uint16_t noka_ids[8];
    int noka_n;
    int noka_overflow; /* more than 8 such ids in flight: close after the next answer */
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void build_canned(void) {
    unsigned char *p = canned;
    /* STDOUT with the body */
    p[0] = 1; p[1] = FCGI_STDOUT; p[2] = 0; p[3] = 0;
    p[4] = (unsigned char)(BODY_LEN >> 8); p[5] = (unsigned char)(BODY_LEN & 0xff); p[6] = 0; p[7] = 0;
    memcpy(p + 8, BODY, BODY_LEN);
    p += 8 + BODY_LEN;
    /* empty STDOUT */
    p[0] = 1; p[1] = FCGI_STDOUT; p[2] = 0; p[3] = 0; p[4] = 0; p[5] = 0; p[6] = 0; p[7] = 0;
    p += 8;
    /* END_REQUEST: appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE */
    p[0] = 1; p[1] = FCGI_END_REQUEST; p[2] = 0; p[3] = 0; p[4] = 0; p[5] = 8; p[6] = 0; p[7] = 0;
    memset(p + 8, 0, 8);
    p += 16;
    canned_len = (size_t)(p - canned);
}

static int out_reserve(struct conn *c, size_t more) {
    if (c->out_len + more <= c->out_cap) return 0;
    if (c->out_len + more > OUT_MAX) return -1;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more) cap *= 2;
    unsigned char *n = realloc(c->out, cap);
    if (!n) return -1;
    c->out = n;
    c->out_cap = cap;
    return 0;
}

static int out_append(struct conn *c, const unsigned char *b, size_t n) {
    if (out_reserve(c, n) < 0) return -1;
    memcpy(c->out + c->out_len, b, n);
    c->out_len += n;
    return 0;
}

static int answer(struct conn *c, uint16_t id) {
    if (out_reserve(c, canned_len) < 0) return -1;
    unsigned char *p = c->out + c->out_len;
    memcpy(p, canned, canned_len);
    unsigned char hi = (unsigned char)(id >> 8), lo = (unsigned char)(id & 0xff);
    size_t offs[3] = {0, 8 + BODY_LEN, 16 + BODY_LEN};
    for (int i = 0; i < 3; i++) { p[offs[i] + 2] = hi; p[offs[i] + 3] = lo; }
    c->out_len += canned_len;
    for (int i = 0; i < c->noka_n; i++) {
        if (c->noka_ids[i] == id) {
            c->noka_ids[i] = c->noka_ids[--c->noka_n];
            c->close_after_flush = 1;
            break;
        }
    }
    if (c->noka_overflow) c->close_after_flush = 1;
    return 0;
}

/* GET_VALUES: answer the three standard variables we know, whatever was asked. */
static int get_values_result(struct conn *c) {
    static const char *pairs[][2] = {
        {"FCGI_MAX_CONNS", "1024"}, {"FCGI_MAX_REQS", "65535"}, {"FCGI_MPXS_CONNS", "1"}};
    unsigned char body[128];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t kl = strlen(pairs[i][0]), vl = strlen(pairs[i][1]);
        body[n++] = (unsigned char)kl;
        body[n++] = (unsigned char)vl;
        memcpy(body + n, pairs[i][0], kl); n += kl;
        memcpy(body + n, pairs[i][1], vl); n += vl;
    }
    unsigned char h[8] = {1, FCGI_GET_VALUES_RESULT, 0, 0, (unsigned char)(n >> 8),
                          (unsigned char)(n & 0xff), 0, 0};
    if (out_append(c, h, 8) < 0) return -1;
    return out_append(c, body, n);
}

static int unknown_type(struct conn *c, unsigned char type) {
    unsigned char r[16] = {1, FCGI_UNKNOWN_TYPE, 0, 0, 0, 8, 0, 0, type, 0, 0, 0, 0, 0, 0, 0};
    return out_append(c, r, 16);
}

/* Consumes whole records (or skips content) from c->in. Returns -1 on a protocol error. */
static int process(struct conn *c) {
    size_t pos = 0;
    for (;;) {
        if (c->skip) {
            size_t n = c->in_len - pos < c->skip ? c->in_len - pos : c->skip;
            pos += n;
            c->skip -= n;
            if (c->skip) break;
        }
        if (c->in_len - pos < 8) break;
        const unsigned char *h = c->in + pos;
        if (h[0] != 1) return -1;
        unsigned char type = h[1];
        uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
        size_t clen = (size_t)(h[4] << 8 | h[5]);
        size_t plen = h[6];
        switch (type) {
        case FCGI_BEGIN_REQUEST:
        case FCGI_GET_VALUES:
            /* Small records whose content we need: wait until whole (they fit in IN_BUF). */
            if (clen + plen + 8 > IN_BUF) return -1;
            if (c->in_len - pos < 8 + clen + plen) goto more;
            if (type == FCGI_BEGIN_REQUEST) {
                if (clen < 8) return -1;
                if (!(h[8 + 2] & FCGI_KEEP_CONN)) {
                    if (c->noka_n < 8) c->noka_ids[c->noka_n++] = id;
                    else c->noka_overflow = 1;
                }
            } else if (get_values_result(c) < 0) {
                return -1;
            }
            pos += 8 + clen + plen;
            break;
        case FCGI_STDIN:
            pos += 8;
            if (clen == 0) {
                if (answer(c, id) < 0) return -1;
            }
            c->skip = clen + plen;
            break;
        case FCGI_ABORT_REQUEST:
            pos += 8;
            if (answer(c, id) < 0) return -1;
            c->skip = clen + plen;
            break;
        case FCGI_PARAMS:
        case FCGI_STDOUT + 2: /* FCGI_DATA: ignored */
            pos += 8;
            c->skip = clen + plen;
            break;
        default:
            pos += 8;
            c->skip = clen + plen;
            if (id == 0 && unknown_type(c, type) < 0) return -1;
            break;
        }
    }
more:
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return 0;
}

static void conn_close(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Writes what is pending. Returns 1 when the connection is done and must be closed, else 0. */
static int flush(int ep, struct conn *c) {
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t n = write(c->fd, c->out + off, c->out_len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return 1;
        }
        off += (size_t)n;
    }
    if (off) {
        memmove(c->out, c->out + off, c->out_len - off);
        c->out_len -= off;
    }
    if (c->out_len == 0 && c->close_after_flush) {
        shutdown(c->fd, SHUT_WR);
        return 1;
    }
    int want = c->out_len > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
    return 0;
}

static int listen_on(const char *addr, char *shown, size_t shown_len, char *unix_path) {
    int fd;
    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const char *path = addr + 5;
        if (strlen(path) >= sizeof(sa.sun_path)) { fprintf(stderr, "socket path too long\n"); return -1; }
        strcpy(sa.sun_path, path);
        strcpy(unix_path, path);
        unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("bind"); return -1; }
        snprintf(shown, shown_len, "unix:%s", path);
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host)) { fprintf(stderr, "bad address %s\n", addr); return -1; }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return -1; }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("bind"); return -1; }
        socklen_t sl = sizeof(sa);
        getsockname(fd, (struct sockaddr *)&sa, &sl);
        snprintf(shown, shown_len, "%s:%u", host, ntohs(sa.sin_port));
    }
    if (listen(fd, 4096) < 0) { perror("listen"); return -1; }
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s HOST:PORT | unix:/path.sock\n", argv[0]);
        return 2;
    }
    build_canned();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char shown[300], unix_path[120] = {0};
    int lfd = listen_on(argv[1], shown, sizeof(shown), unix_path);
    if (lfd < 0) return 1;
    int tcp = strncmp(argv[1], "unix:", 5) != 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    printf("listening on %s\n", shown);
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stop_flag) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (tcp) {
                        int one = 1;
                        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    }
                    struct conn *nc = calloc(1, sizeof(*nc));
                    if (!nc) { close(cfd); continue; }
                    nc->fd = cfd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            int done = 0;
            if (evs[i].events & EPOLLOUT) done = flush(ep, c);
            if (!done && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t r = read(c->fd, c->in + c->in_len, IN_BUF - c->in_len);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    done = 1;
                } else if (r > 0) {
                    c->in_len += (size_t)r;
                    if (process(c) < 0) done = 1;
                    else if (c->out_len) done = flush(ep, c);
                }
            }
            if (done) conn_close(ep, c);
        }
    }
    if (unix_path[0]) unlink(unix_path);
    return 0;
}
