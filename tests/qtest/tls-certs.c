/*
 * Test credentials made with the GnuTLS API (see tls-certs.h). ECDSA
 * P-256 keys: quick to make. Valid from a minute ago for a day.
 */
#include <glib.h>
#include <stdbool.h>
#include <glib/gstdio.h>
#include <string.h>
#include <time.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls-certs.h"

typedef struct TestCert {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
} TestCert;

#define CHECK(expr) g_assert_cmpint((expr), >=, 0)

static void write_datum(const char *dir, const char *name,
                        const gnutls_datum_t *d)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    g_assert_true(
        g_file_set_contents(path, (const char *)d->data, d->size, NULL));
}

static void cert_save(const TestCert *c, const char *dir, const char *cert,
                      const char *key)
{
    gnutls_datum_t d;

    CHECK(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_PEM, &d));
    write_datum(dir, cert, &d);
    gnutls_free(d.data);
    if (key) {
        CHECK(gnutls_x509_privkey_export2(c->key, GNUTLS_X509_FMT_PEM, &d));
        write_datum(dir, key, &d);
        gnutls_free(d.data);
    }
}

/* A certificate for `dn`; signed by `ca` (NULL: self-signed CA). */
static void cert_make(TestCert *c, const char *dn, const TestCert *ca,
                      int serial, bool server)
{
    unsigned char sn = (unsigned char)serial;
    time_t now = time(NULL);

    CHECK(gnutls_x509_privkey_init(&c->key));
    CHECK(gnutls_x509_privkey_generate(
        c->key, GNUTLS_PK_ECDSA,
        GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    CHECK(gnutls_x509_crt_init(&c->crt));
    CHECK(gnutls_x509_crt_set_version(c->crt, 3));
    CHECK(gnutls_x509_crt_set_serial(c->crt, &sn, 1));
    CHECK(gnutls_x509_crt_set_activation_time(c->crt, now - 60));
    CHECK(gnutls_x509_crt_set_expiration_time(c->crt, now + 86400));
    CHECK(gnutls_x509_crt_set_dn(c->crt, dn, NULL));
    CHECK(gnutls_x509_crt_set_key(c->crt, c->key));
    if (!ca) {
        CHECK(gnutls_x509_crt_set_basic_constraints(c->crt, 1, -1));
        CHECK(gnutls_x509_crt_set_key_usage(c->crt, GNUTLS_KEY_KEY_CERT_SIGN |
                                                        GNUTLS_KEY_CRL_SIGN));
    } else {
        CHECK(gnutls_x509_crt_set_basic_constraints(c->crt, 0, -1));
        CHECK(gnutls_x509_crt_set_key_usage(c->crt,
                                            GNUTLS_KEY_DIGITAL_SIGNATURE));
        CHECK(gnutls_x509_crt_set_key_purpose_oid(
            c->crt,
            server ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT, 0));
    }
    if (server) {
        unsigned char ip[4] = {127, 0, 0, 1};
        CHECK(gnutls_x509_crt_set_subject_alt_name(
            c->crt, GNUTLS_SAN_DNSNAME, "localhost", strlen("localhost"),
            GNUTLS_FSAN_APPEND));
        CHECK(gnutls_x509_crt_set_subject_alt_name(
            c->crt, GNUTLS_SAN_IPADDRESS, ip, sizeof(ip), GNUTLS_FSAN_APPEND));
    }
    CHECK(gnutls_x509_crt_sign2(c->crt, ca ? ca->crt : c->crt,
                                ca ? ca->key : c->key, GNUTLS_DIG_SHA256, 0));
}

static void cert_free(TestCert *c)
{
    gnutls_x509_crt_deinit(c->crt);
    gnutls_x509_privkey_deinit(c->key);
}

static char *subdir(const char *dir, const char *name)
{
    char *p = g_build_filename(dir, name, NULL);

    g_assert_cmpint(g_mkdir_with_parents(p, 0700), ==, 0);
    return p;
}

void tls_test_x509_setup(const char *dir)
{
    g_autofree char *srv = subdir(dir, "server");
    g_autofree char *cli = subdir(dir, "client");
    g_autofree char *hostile = subdir(dir, "hostile");
    g_autofree char *anon = subdir(dir, "anon");
    TestCert ca, other_ca, server, client, bad;

    cert_make(&ca, "O=Godwit Test,CN=Godwit Test CA", NULL, 1, false);
    /* a forged CA: the real one's name, another key */
    cert_make(&other_ca, "O=Godwit Test,CN=Godwit Test CA", NULL, 2, false);
    cert_make(&server, "O=Godwit Test,CN=localhost", &ca, 3, true);
    cert_make(&client, TLS_TEST_CLIENT_DN, &ca, 4, false);
    cert_make(&bad, "O=Elsewhere,CN=client.test", &other_ca, 5, false);
    cert_save(&ca, srv, "ca-cert.pem", NULL);
    cert_save(&server, srv, "server-cert.pem", "server-key.pem");
    cert_save(&ca, cli, "ca-cert.pem", NULL);
    cert_save(&client, cli, "client-cert.pem", "client-key.pem");
    /* it trusts the server, the server does not trust it */
    cert_save(&ca, hostile, "ca-cert.pem", NULL);
    cert_save(&bad, hostile, "client-cert.pem", "client-key.pem");
    cert_save(&ca, anon, "ca-cert.pem", NULL);
    cert_free(&ca);
    cert_free(&other_ca);
    cert_free(&server);
    cert_free(&client);
    cert_free(&bad);
}

void tls_test_psk_setup(const char *dir, int seed)
{
    g_autofree char *path = g_build_filename(dir, "keys.psk", NULL);
    GString *s = g_string_new("qemu:");

    g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
    for (int i = 0; i < 32; i++) {
        g_string_append_printf(s, "%02x", (seed * 37 + i * 11) & 0xff);
    }
    g_string_append_c(s, '\n');
    g_assert_true(g_file_set_contents(path, s->str, -1, NULL));
    g_string_free(s, TRUE);
}

/* Removes `dir`'s files and empty subfolders, then `dir` itself. */
static void remove_tree(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR)) {
            remove_tree(p);
        } else {
            g_unlink(p);
        }
    }
    g_rmdir(dir);
}

void tls_test_cleanup(const char *dir)
{
    static const char *const subs[] = {"server", "client", "hostile",
                                       "anon",   "psk",    "psk-bad"};

    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        g_autofree char *p = g_build_filename(dir, subs[i], NULL);
        remove_tree(p);
    }
}
