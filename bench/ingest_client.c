/*
 * One ingest cell of bench/ingest_paths.sh with a C client: libzmq (the reference ZeroMQ
 * library, the one pyzmq, cppzmq and most bindings wrap) for the ZeroMQ cells, plain sockets
 * for the TCP cells. zmq_bench's clients are tokio tasks with the pure-Rust `zeromq` crate;
 * on these two cores a client's CPU is taken from the server, and that crate's client costs
 * more per sample than the TCP one. This client measures the server's paths with the least
 * client in the way. The workload is zmq_bench's: CLIENTS closed loops, each with its own
 * 250 series, sending per round trip 8 TS.MADD of 100 samples, or 800 BATCH_SET and one
 * BATCH_FLUSH; every series' timestamps increase; every reply is checked (an error reply or
 * element, or a BATCH_FLUSH count short of 800, ends the run with status 1).
 *
 *   cc -O2 -o ingest_client bench/ingest_client.c -lzmq -lpthread
 *   ingest_client madd|batch tcp|zmq HOST:TCP_PORT ZMQ_ENDPOINT CLIENTS SECONDS
 *
 * Prints one line: `rate=<samples/s> client_us=<this process's CPU µs per sample>
 * samples=<samples stored>`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

enum { MADD_SAMPLES = 100, MADD_IN_FLIGHT = 8, BATCH_SAMPLES = 800, SERIES_PER_CLIENT = 250 };
static const uint64_t BASE_TS = 1700000000000ULL;

static int batch_mode, zmq_mode, clients;
static double seconds;
static char tcp_host[256];
static int tcp_port;
static const char *zmq_endpoint;
static void *zmq_ctx;
static char cell[64];

static void die(const char *what) {
    fprintf(stderr, "ingest_client: %s\n", what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* A growable byte buffer. */
struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) die("out of memory");
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* `v` in decimal at `out` (room for 20 digits); returns its length. (snprintf is most of a
 * sample's client CPU otherwise.) */
static size_t decimal(uint64_t v, char *out) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* `mark`, then `n` in decimal, then CRLF: a bulk string's or an array's header. */
static void header(struct buf *b, char mark, size_t n) {
    char head[24];
    head[0] = mark;
    size_t len = 1 + decimal(n, head + 1);
    head[len++] = '\r';
    head[len++] = '\n';
    put(b, head, len);
}

/* A RESP bulk string. */
static void bulk(struct buf *b, const char *s, size_t n) {
    header(b, '$', n);
    put(b, s, n);
    put(b, "\r\n", 2);
}

static void array(struct buf *b, size_t n) { header(b, '*', n); }

/* Sample `seq` of client `c`: its key and timestamp (each series' next sample 250 ms later). */
static void sample(struct buf *b, int c, uint64_t seq, int with_value_first) {
    char key[128], ts[24];
    size_t cell_len = strlen(cell), kn = cell_len;
    memcpy(key, cell, cell_len);
    key[kn++] = ':';
    kn += decimal((uint64_t)c, key + kn);
    key[kn++] = ':';
    kn += decimal(seq % SERIES_PER_CLIENT, key + kn);
    size_t tn = decimal(BASE_TS + seq, ts);
    bulk(b, key, kn);
    if (with_value_first) {
        bulk(b, "100.25", 6);
        bulk(b, ts, (size_t)tn);
    } else {
        bulk(b, ts, (size_t)tn);
        bulk(b, "100.25", 6);
    }
}

/* One round trip's requests from sample `seq`; returns the replies it is owed. */
static int round_payload(struct buf *b, int c, uint64_t seq) {
    b->len = 0;
    if (batch_mode) {
        for (uint64_t j = 0; j < BATCH_SAMPLES; j++) {
            array(b, 4);
            bulk(b, "BATCH_SET", 9);
            sample(b, c, seq + j, 1);
        }
        array(b, 1);
        bulk(b, "BATCH_FLUSH", 11);
        return BATCH_SAMPLES + 1;
    }
    for (uint64_t k = 0; k < MADD_IN_FLIGHT; k++) {
        array(b, 1 + 3 * MADD_SAMPLES);
        bulk(b, "TS.MADD", 7);
        for (uint64_t j = 0; j < MADD_SAMPLES; j++) sample(b, c, seq + k * MADD_SAMPLES + j, 0);
    }
    return MADD_IN_FLIGHT;
}

/* The end of the line starting at `p`, or NULL when it is not complete. */
static const char *line_end(const char *p, const char *end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl && nl > p && nl[-1] == '\r' ? nl + 1 : NULL;
}

/*
 * Parses one reply at `p`: returns the bytes it takes, 0 when incomplete. Any error reply or
 * element, or an integer reply (BATCH_FLUSH's count) other than 800, ends the run.
 */
static size_t reply(const char *p, const char *end, int top) {
    if (p >= end) return 0;
    const char *next = line_end(p, end);
    if (!next) return 0;
    switch (*p) {
    case '+':
        return (size_t)(next - p);
    case '-':
        fprintf(stderr, "ingest_client: error reply: %.*s\n", (int)(next - p - 2), p);
        exit(1);
    case ':':
        if (top && strtoll(p + 1, NULL, 10) != BATCH_SAMPLES) {
            fprintf(stderr, "ingest_client: BATCH_FLUSH stored %.*s of %d\n",
                    (int)(next - p - 3), p + 1, BATCH_SAMPLES);
            exit(1);
        }
        return (size_t)(next - p);
    case '*': {
        long n = strtol(p + 1, NULL, 10);
        const char *q = next;
        for (long i = 0; i < n; i++) {
            size_t used = reply(q, end, 0);
            if (!used) return 0;
            q += used;
        }
        return (size_t)(q - p);
    }
    default:
        fprintf(stderr, "ingest_client: unexpected reply byte '%c'\n", *p);
        exit(1);
    }
}

/* Counts complete replies in `b`, removes their bytes, returns the count. */
static int take_replies(struct buf *b) {
    size_t pos = 0, used;
    int n = 0;
    while ((used = reply(b->p + pos, b->p + b->len, 1)) > 0) {
        pos += used;
        n++;
    }
    memmove(b->p, b->p + pos, b->len - pos);
    b->len -= pos;
    return n;
}

static int tcp_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port)};
    if (fd < 0 || inet_pton(AF_INET, tcp_host, &a.sin_addr) != 1) die("bad TCP address");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("TCP connect failed");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void tcp_send(int fd, const struct buf *b) {
    for (size_t off = 0; off < b->len;) {
        ssize_t n = write(fd, b->p + off, b->len - off);
        if (n <= 0) die("TCP write failed");
        off += (size_t)n;
    }
}

/* Reads until `want` replies arrived on `fd`. */
static void tcp_replies(int fd, struct buf *in, int want) {
    int got = 0;
    while (got < want) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0) die("TCP read failed (server closed?)");
        put(in, chunk, (size_t)n);
        got += take_replies(in);
    }
    if (got != want || in->len) die("more replies than requests");
}

struct client {
    int c;
    uint64_t samples;
};

static void *run_client(void *arg) {
    struct client *cl = arg;
    struct buf out = {0}, in = {0};
    double end = now() + seconds;
    uint64_t seq = 0;
    if (zmq_mode) {
        void *s = zmq_socket(zmq_ctx, ZMQ_DEALER);
        if (!s || zmq_connect(s, zmq_endpoint) != 0) die("ZeroMQ connect failed");
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        while (now() < end) {
            int want = round_payload(&out, cl->c, seq);
            if (zmq_send(s, "", 0, ZMQ_SNDMORE) != 0 || zmq_send(s, out.p, out.len, 0) < 0)
                die("ZeroMQ send failed");
            if (zmq_msg_recv(&msg, s, 0) != 0 || !zmq_msg_more(&msg)) die("no delimiter frame");
            if (zmq_msg_recv(&msg, s, 0) < 0 || zmq_msg_more(&msg)) die("one payload frame");
            in.len = 0;
            put(&in, zmq_msg_data(&msg), zmq_msg_size(&msg));
            if (take_replies(&in) != want || in.len) die("a reply per request, nothing else");
            seq += BATCH_SAMPLES;
        }
        zmq_msg_close(&msg);
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(s);
    } else {
        int fd = tcp_connect();
        while (now() < end) {
            int want = round_payload(&out, cl->c, seq);
            tcp_send(fd, &out);
            tcp_replies(fd, &in, want);
            seq += BATCH_SAMPLES;
        }
        close(fd);
    }
    free(out.p);
    free(in.p);
    cl->samples = seq;
    return NULL;
}

/* TS.MADD needs its series; BATCH_SET creates them. */
static void create_series(void) {
    struct buf out = {0}, in = {0};
    for (int c = 0; c < clients; c++) {
        for (int i = 0; i < SERIES_PER_CLIENT; i++) {
            char key[128];
            int kn = snprintf(key, sizeof key, "%s:%d:%d", cell, c, i);
            array(&out, 2);
            bulk(&out, "TS.CREATE", 9);
            bulk(&out, key, (size_t)kn);
        }
    }
    int fd = tcp_connect();
    tcp_send(fd, &out);
    tcp_replies(fd, &in, clients * SERIES_PER_CLIENT);
    close(fd);
    free(out.p);
    free(in.p);
}

static double cpu_self(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 7) die("usage: ingest_client madd|batch tcp|zmq HOST:TCP_PORT ZMQ_ENDPOINT CLIENTS SECONDS");
    batch_mode = strcmp(argv[1], "batch") == 0;
    zmq_mode = strcmp(argv[2], "zmq") == 0;
    const char *colon = strrchr(argv[3], ':');
    if (!colon || (size_t)(colon - argv[3]) >= sizeof tcp_host) die("HOST:TCP_PORT");
    memcpy(tcp_host, argv[3], (size_t)(colon - argv[3]));
    tcp_port = atoi(colon + 1);
    zmq_endpoint = argv[4];
    clients = atoi(argv[5]);
    seconds = atof(argv[6]);
    if (clients < 1 || clients > 64 || seconds <= 0) die("1..64 clients, seconds > 0");
    snprintf(cell, sizeof cell, "ic%d:%s:%s", (int)getpid(), argv[1], argv[2]);
    if (!batch_mode) create_series();
    zmq_ctx = zmq_ctx_new();
    struct client cl[64];
    pthread_t t[64];
    double cpu0 = cpu_self(), t0 = now();
    for (int c = 0; c < clients; c++) {
        cl[c] = (struct client){.c = c};
        pthread_create(&t[c], NULL, run_client, &cl[c]);
    }
    uint64_t total = 0;
    for (int c = 0; c < clients; c++) {
        pthread_join(t[c], NULL);
        total += cl[c].samples;
    }
    double elapsed = now() - t0, cpu = cpu_self() - cpu0;
    zmq_ctx_term(zmq_ctx);
    printf("rate=%.0f client_us=%.3f samples=%llu\n", total / elapsed,
           total ? cpu * 1e6 / total : 0.0, (unsigned long long)total);
    return 0;
}
