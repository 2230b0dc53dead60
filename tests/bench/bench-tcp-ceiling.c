/*
 * Benchmark: the single-stream loopback TCP ceiling on this host, the
 * physical limit a one-connection migration is measured against. One
 * thread writes N bytes in 1 MiB writes; the receiver reads them. Prints
 * GB/s.
 *
 *   bench-tcp-ceiling [MiB] [span]
 *
 * span "buffer" (default): both sides reuse one 1 MiB buffer (cache-hot,
 * the raw TCP figure). span "ram": the sender sends N MiB of distinct,
 * populated memory and the receiver writes it into N MiB of distinct,
 * populated memory -- what a migration must do at best, RAM to RAM.
 */
#include <arpa/inet.h>
#include <glib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static size_t total;
static struct sockaddr_in addr;
static bool span_ram;

/* N bytes of populated memory (or a 1 MiB buffer). */
static char *area(size_t n)
{
    char *p = malloc(span_ram ? n : CHUNK);
    memset(p, 0x5a, span_ram ? n : CHUNK);
    return p;
}

static void *sender(void *arg)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *buf = area(total);
    size_t sent = 0;

    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("connect");
        exit(1);
    }
    while (sent < total) {
        ssize_t n = send(fd, buf + (span_ram ? sent : 0),
                         MIN(CHUNK, total - sent), MSG_NOSIGNAL);
        if (n <= 0) {
            perror("send");
            exit(1);
        }
        sent += n;
    }
    close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 4096;
    socklen_t alen = sizeof(addr);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    size_t got = 0;
    pthread_t t;

    span_ram = argc > 2 && !strcmp(argv[2], "ram");
    total = mib << 20;
    char *buf = area(total);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("listen");
        return 1;
    }
    pthread_create(&t, NULL, sender, NULL);
    int fd = accept(lfd, NULL, NULL);
    double t0 = g_get_monotonic_time() / 1e6;
    for (;;) {
        ssize_t n = read(fd, buf + (span_ram ? got : 0),
                         span_ram ? MIN(CHUNK, total - got) : CHUNK);
        if (n <= 0) {
            break;
        }
        got += n;
    }
    double dt = g_get_monotonic_time() / 1e6 - t0;
    pthread_join(t, NULL);
    printf("tcp-loopback-%s %.2f GB/s (%zu MiB in %.2f s)\n",
           span_ram ? "ram" : "buffer", got / dt / 1e9, got >> 20, dt);
    return got == total ? 0 : 1;
}
