/*
 * Writes throwaway TLS credentials for scripts/bench: DIR/server,
 * DIR/client (x509, from tests/qtest/tls-certs.c) and DIR/psk/keys.psk.
 */
#include <glib.h>
#include <stdio.h>

#include "../qtest/tls-certs.h"

int main(int argc, char **argv)
{
    g_autofree char *psk = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    tls_test_x509_setup(argv[1]);
    psk = g_build_filename(argv[1], "psk", NULL);
    tls_test_psk_setup(psk, 1);
    return 0;
}
