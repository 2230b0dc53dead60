/*
 * Benchmark: the single-stream loopback TCP ceiling on this host, the
 * physical limit a one-connection migration is measured against. One
 * thread writes N bytes in 1 MiB writes; the receiver reads them into a
 * buffer (as a destination does). Prints GB/s.
 *
 *   bench-tcp-ceiling [MiB]   (default 4096)
 */
#include <arpa/inet.h>
#include <glib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static size_t total;
static struct sockaddr_in addr;

static void *sender(void *arg)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *buf = malloc(CHUNK);
    size_t sent = 0;

    memset(buf, 0x5a, CHUNK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("connect");
        exit(1);
    }
    while (sent < total) {
        ssize_t n = send(fd, buf, CHUNK, MSG_NOSIGNAL);
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
    char *buf = malloc(CHUNK);
    size_t got = 0;
    pthread_t t;

    total = mib << 20;
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
        ssize_t n = read(fd, buf, CHUNK);
        if (n <= 0) {
            break;
        }
        got += n;
    }
    double dt = g_get_monotonic_time() / 1e6 - t0;
    pthread_join(t, NULL);
    printf("tcp-loopback %.2f GB/s (%zu MiB in %.2f s)\n", got / dt / 1e9,
           got >> 20, dt);
    return got == total ? 0 : 1;
}
