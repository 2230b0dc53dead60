/*
 * Unit tests for object/ and crypto/: property parsing (-object syntax),
 * the registry's refusals, authz rule matching (a table), the authz and
 * TLS credentials types built from properties. Each test deletes the
 * objects and files it made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <glib/gstdio.h>
#include <gnutls/gnutls.h>

#include "crypto/authz.h"
#include "crypto/init.h"
#include "crypto/tls.h"
#include "godwit/object.h"

static int setup(void **state)
{
    crypto_objects_register();
    return 0;
}

static int teardown(void **state)
{
    object_del_all();
    return 0;
}

static void test_props_parse(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) p = gw_props_parse(
        "authz-simple,id=a0,identity=CN=x,,O=y", "qom-type", &err);

    assert_non_null(p);
    assert_string_equal(g_hash_table_lookup(p, "qom-type"), "authz-simple");
    assert_string_equal(g_hash_table_lookup(p, "id"), "a0");
    /* ",," is a comma inside a value */
    assert_string_equal(g_hash_table_lookup(p, "identity"), "CN=x,O=y");
}

static void test_props_errors(void **state)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"t,id=a,id=b", "Parameter 'id' given twice"},
        {"t,novalue", "Expected '=' after parameter 'novalue'"},
        {"t,=x", "Invalid parameter '=x'"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        assert_null(gw_props_parse(cases[i].text, "qom-type", &err));
        assert_string_equal(err->message, cases[i].err);
    }
}

/* object_add_keyval refusals, with the message a user sees. */
static void test_add_errors(void **state)
{
    static const struct {
        const char *spec, *err;
    } cases[] = {
        {"no-such-type,id=x",
         "invalid object type: no-such-type (godwit has tls-creds-x509, "
         "tls-creds-psk, tls-creds-anon, authz-simple, authz-list)"},
        {"authz-simple,identity=a", "Parameter 'id' is missing"},
        {"authz-simple,id=1x,identity=a",
         "Parameter 'id' expects an identifier"},
        {"authz-simple,id=a", "authz-simple 'a': property 'identity' is "
                              "missing"},
        {"authz-simple,id=a,identity=x,colour=red",
         "Property 'authz-simple.colour' not found"},
        {"authz-list,id=a,policy=maybe",
         "authz-list 'a': Parameter 'policy' does not accept value 'maybe' "
         "(deny, allow)"},
        {"authz-list,id=a,rules.0.policy=allow",
         "authz-list 'a': Parameter 'rules.0.match' is missing"},
        {"authz-list,id=a,rules.1.match=x",
         "Property 'authz-list.rules.1.match' not found"},
        {"tls-creds-x509,id=t,endpoint=server",
         "tls-creds-x509 't': property 'dir' is missing"},
        {"tls-creds-psk,id=t,dir=/nonexistent,endpoint=middle",
         "Parameter 'endpoint' does not accept value 'middle' (client, "
         "server)"},
        {"tls-creds-x509,id=t,dir=/nonexistent,verify-peer=perhaps",
         "Parameter 'verify-peer' expects 'on' or 'off'"},
        {"tls-creds-x509,id=t,dir=/nonexistent",
         "tls-creds-x509 't': Unable to access credentials "
         "/nonexistent/ca-cert.pem: No such file or directory"},
        {"tls-creds-psk,id=t,dir=/nonexistent,endpoint=server",
         "tls-creds-psk 't': Unable to access credentials "
         "/nonexistent/keys.psk: No such file or directory"},
        /* properties that would mean nothing are refused, not ignored */
        {"tls-creds-psk,id=t,dir=/nonexistent,verify-peer=off",
         "tls-creds-psk 't': verify-peer=off is not possible with a "
         "pre-shared key: the key always authenticates the peer"},
        {"tls-creds-psk,id=t,dir=/nonexistent,endpoint=server,username=u",
         "tls-creds-psk 't': property 'username' is for the client endpoint "
         "(a server takes every user of keys.psk)"},
        {"tls-creds-anon,id=t,verify-peer=on",
         "tls-creds-anon 't': verify-peer=on is not possible with anonymous "
         "credentials: there is no identity to verify"},
        {"tls-creds-anon,id=t,dir=/tmp",
         "tls-creds-anon 't': property 'dir' is read by a server only (for "
         "dh-params.pem); an anonymous client has no files"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        assert_false(object_add_keyval(cases[i].spec, &err));
        assert_string_equal(err->message, cases[i].err);
    }
    assert_null(object_ref_by_id("t"));
    assert_null(object_ref_by_id("a"));
}

static void test_add_del(void **state)
{
    g_autoptr(GError) err = NULL;
    GwObject *o;

    assert_true(object_add_keyval("authz-simple,id=a0,identity=me", &err));
    assert_false(object_add_keyval("authz-list,id=a0", &err));
    assert_string_equal(err->message, "an object with id 'a0' already exists");
    g_clear_error(&err);
    /* a user holds it: object-del waits for it to let go */
    o = object_ref_by_id("a0");
    assert_string_equal(object_type_name(o), "authz-simple");
    assert_false(object_del("a0", &err));
    assert_string_equal(err->message,
                        "object 'a0' is in use, can not be deleted");
    g_clear_error(&err);
    object_unref(o);
    assert_true(object_del("a0", NULL));
    assert_false(object_del("a0", &err));
    assert_string_equal(err->message, "object 'a0' not found");
}

typedef struct AuthzCase {
    const char *identity;
    bool allowed;
} AuthzCase;

static void test_authz_match(void **state)
{
    AuthzRule rules[] = {
        {"CN=alice,O=Example", AUTHZ_POLICY_ALLOW, AUTHZ_FORMAT_EXACT},
        {"*O=Evil*", AUTHZ_POLICY_DENY, AUTHZ_FORMAT_GLOB},
        {"CN=*,O=Example", AUTHZ_POLICY_ALLOW, AUTHZ_FORMAT_GLOB},
    };
    Authz deny_default = {AUTHZ_POLICY_DENY, rules, G_N_ELEMENTS(rules)};
    Authz allow_default = {AUTHZ_POLICY_ALLOW, rules, G_N_ELEMENTS(rules)};
    static const AuthzCase deny_cases[] = {
        {"CN=alice,O=Example", true},
        {"CN=bob,O=Example", true},      /* the glob */
        {"CN=bob,O=Evil Inc", false},    /* denied before the glob */
        {"CN=bob,O=Example Ltd", false}, /* glob anchored: the default */
        {"cn=alice,o=example", false},   /* exact is exact */
        {"", false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(deny_cases); i++) {
        assert_int_equal(
            authz_is_allowed(&deny_default, deny_cases[i].identity),
            deny_cases[i].allowed);
    }
    assert_true(authz_is_allowed(&allow_default, "CN=carol,O=Other"));
    assert_false(authz_is_allowed(&allow_default, "CN=x,O=Evil"));
    /* no identity proved (no certificate): always denied */
    assert_false(authz_is_allowed(&allow_default, NULL));
}

static void test_authz_objects(void **state)
{
    g_autoptr(GError) err = NULL;

    assert_true(object_add_keyval(
        "authz-list,id=l0,policy=deny,rules.0.match=CN=*,,O=Example,"
        "rules.0.format=glob,rules.0.policy=allow,rules.1.match=CN=x,"
        "rules.1.policy=allow",
        &err));
    assert_true(authz_check_by_id("l0", "CN=bob,O=Example", NULL));
    assert_true(authz_check_by_id("l0", "CN=x", NULL));
    assert_false(authz_check_by_id("l0", "CN=y", &err));
    assert_string_equal(err->message,
                        "TLS authz check for 'CN=y' is denied (l0)");
    g_clear_error(&err);
    assert_false(authz_check_by_id("nope", "CN=x", &err));
    assert_string_equal(err->message, "No authorization object with id 'nope'");
    g_clear_error(&err);
    assert_true(object_add_keyval("tls-creds-anon,id=t0", NULL));
    assert_false(authz_check_by_id("t0", "CN=x", &err));
    assert_string_equal(err->message,
                        "Object 't0' is not an authorization object");
}

/* A server's dir/dh-params.pem is read (PKCS#3), as QEMU reads it. */
static void test_creds_dh_params(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("gwobj-XXXXXX", NULL);
    g_autofree char *file = g_build_filename(dir, "dh-params.pem", NULL);
    g_autofree char *spec =
        g_strdup_printf("tls-creds-anon,id=d0,endpoint=server,dir=%s", dir);
    g_autoptr(GError) err = NULL;
    gnutls_dh_params_t dh;
    gnutls_datum_t pem = {NULL, 0};

    /* no file: GnuTLS's own groups */
    assert_true(object_add_keyval(spec, &err));
    assert_true(object_del("d0", &err));
    /* a bad file is an error of object-add */
    assert_true(g_file_set_contents(file, "not PEM\n", -1, NULL));
    assert_false(object_add_keyval(spec, &err));
    assert_non_null(strstr(err->message, "Cannot load DH parameters"));
    g_clear_error(&err);
    /* RFC 7919's ffdhe2048, written as PKCS#3 */
    gnutls_dh_params_init(&dh);
    assert_int_equal(
        gnutls_dh_params_import_raw(dh, &gnutls_ffdhe_2048_group_prime,
                                    &gnutls_ffdhe_2048_group_generator),
        0);
    assert_int_equal(
        gnutls_dh_params_export2_pkcs3(dh, GNUTLS_X509_FMT_PEM, &pem), 0);
    assert_true(g_file_set_contents(file, (char *)pem.data, pem.size, NULL));
    gnutls_free(pem.data);
    gnutls_dh_params_deinit(dh);
    if (!object_add_keyval(spec, &err)) {
        fail_msg("%s", err->message);
    }
    assert_true(object_del("d0", &err));
    g_unlink(file);
    g_rmdir(dir);
}

static void test_creds_psk(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("gwobj-XXXXXX", NULL);
    g_autofree char *file = g_build_filename(dir, "keys.psk", NULL);
    g_autofree char *spec = NULL;
    g_autoptr(GError) err = NULL;
    TlsCreds *c;

    assert_true(g_file_set_contents(file, "qemu:0123456789abcdef\n", -1, NULL));
    spec = g_strdup_printf("tls-creds-psk,id=p0,dir=%s,endpoint=client", dir);
    assert_true(object_add_keyval(spec, &err));
    g_free(spec);
    spec = g_strdup_printf("tls-creds-psk,id=p1,dir=%s,endpoint=client,"
                           "username=other",
                           dir);
    assert_false(object_add_keyval(spec, &err));
    assert_non_null(strstr(err->message, "Cannot find PSK for username "
                                         "'other'"));
    g_clear_error(&err);
    /* the endpoint a migration side needs is checked */
    assert_null(tls_creds_get("p0", TLS_ENDPOINT_SERVER, &err));
    assert_string_equal(err->message,
                        "Expected TLS credentials for a server endpoint "
                        "(object 'p0' has endpoint=client)");
    g_clear_error(&err);
    c = tls_creds_get("p0", TLS_ENDPOINT_CLIENT, &err);
    assert_non_null(c);
    assert_false(tls_creds_needs_hostname(c));
    tls_creds_put(c);
    assert_null(tls_creds_get("nope", TLS_ENDPOINT_CLIENT, &err));
    assert_string_equal(err->message, "No TLS credentials with id 'nope'");
    g_unlink(file);
    g_rmdir(dir);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_props_parse),     T(test_props_errors), T(test_add_errors),
        T(test_add_del),         T(test_authz_match),  T(test_authz_objects),
        T(test_creds_dh_params), T(test_creds_psk),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
