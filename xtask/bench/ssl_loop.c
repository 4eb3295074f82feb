/*
 * ssl_loop: a tight TLS ping-pong over one loopback TCP connection inside one process, for
 * `cargo xtask bench` (section overhead). It uses the system libssl, so every SSL_write and
 * SSL_read goes through the functions doh-trace hooks.
 *
 * Usage: ssl_loop SIZE SECONDS CERT.pem KEY.pem
 *
 * A server thread and the main (client) thread: client SSL_write(SIZE) -> server SSL_read
 * until SIZE bytes -> server SSL_write(SIZE) -> client SSL_read until SIZE bytes. After a
 * short warm-up it counts round trips for SECONDS and prints one line:
 *   size=64 round_trips=123456 seconds=2.000 rate=61728.0 ns_per_rt=16200
 * The payload is fixed bytes that are not DNS. Exit status 1 on any error.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP_ROUND_TRIPS 200

static size_t size;
static SSL_CTX *server_ctx;
static int listen_fd;

static void die(const char *what) {
    fprintf(stderr, "ssl_loop: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads exactly n bytes; returns 0 on a clean end of stream before any byte. */
static int read_all(SSL *ssl, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        int r = SSL_read(ssl, buf + got, (int)(n - got));
        if (r <= 0) {
            if (got == 0 && SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN)
                return 0;
            die("SSL_read failed");
        }
        got += (size_t)r;
    }
    return 1;
}

static void write_all(SSL *ssl, const unsigned char *buf, size_t n) {
    /* Blocking, no partial writes: SSL_write returns only once all n bytes are sent. */
    if (SSL_write(ssl, buf, (int)n) != (int)n)
        die("SSL_write failed");
}

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void *server(void *arg) {
    unsigned char *buf = arg;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        die("accept failed");
    nodelay(fd);
    SSL *ssl = SSL_new(server_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1)
        die("TLS accept failed");
    while (read_all(ssl, buf, size))
        write_all(ssl, buf, size);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: ssl_loop SIZE SECONDS CERT.pem KEY.pem\n");
        return 2;
    }
    size = strtoul(argv[1], NULL, 10);
    double seconds = strtod(argv[2], NULL);
    if (size == 0 || size > 16384 || seconds <= 0) {
        fprintf(stderr, "ssl_loop: SIZE must be 1..16384 and SECONDS > 0\n");
        return 2;
    }

    server_ctx = SSL_CTX_new(TLS_server_method());
    if (!server_ctx || SSL_CTX_use_certificate_chain_file(server_ctx, argv[3]) != 1 ||
        SSL_CTX_use_PrivateKey_file(server_ctx, argv[4], SSL_FILETYPE_PEM) != 1)
        die("loading the certificate and key");
    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    if (!client_ctx)
        die("SSL_CTX_new failed");
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listen_fd, 1) != 0 || getsockname(listen_fd, (struct sockaddr *)&addr, &len) != 0)
        die("listening on 127.0.0.1 failed (is loopback up?)");

    unsigned char *server_buf = malloc(size), *out = malloc(size), *in = malloc(size);
    if (!server_buf || !out || !in)
        die("out of memory");
    static const char pattern[] = "doh-trace bench payload, not DNS. ";
    for (size_t i = 0; i < size; i++)
        out[i] = (unsigned char)pattern[i % (sizeof pattern - 1)];

    pthread_t tid;
    if (pthread_create(&tid, NULL, server, server_buf) != 0)
        die("pthread_create failed");

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect failed");
    nodelay(fd);
    SSL *ssl = SSL_new(client_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1)
        die("TLS connect failed");

    for (int i = 0; i < WARMUP_ROUND_TRIPS; i++) {
        write_all(ssl, out, size);
        if (!read_all(ssl, in, size))
            die("server closed early");
    }
    unsigned long long round_trips = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        write_all(ssl, out, size);
        if (!read_all(ssl, in, size))
            die("server closed early");
        round_trips++;
        t = now();
    }
    double elapsed = t - start;

    SSL_shutdown(ssl);
    shutdown(fd, SHUT_WR);
    pthread_join(tid, NULL);
    SSL_free(ssl);
    close(fd);
    printf("size=%zu round_trips=%llu seconds=%.3f rate=%.1f ns_per_rt=%.0f\n", size, round_trips,
           elapsed, (double)round_trips / elapsed, elapsed * 1e9 / (double)round_trips);
    return 0;
}
