/*
 * qtest: the godwit command line as a user meets it. Bad input gets one
 * clear line on stderr and exit status 1, and leaves nothing behind
 * (no socket, no pidfile, no serial log).
 */
#include <string.h>
#include <unistd.h>

#include "libgwtest.h"

typedef struct ErrCase {
    const char *args;
    const char *msg;
} ErrCase;

static void check_error(const char *args, const char *msg)
{
    g_autofree char *err = NULL;
    int rc = gwt_run(&err, "%s", args);

    g_test_message("godwit %s -> %d: %s", args, rc, err);
    g_assert_cmpint(rc, ==, 1);
    g_assert_nonnull(strstr(err, msg));
    g_assert_true(g_str_has_prefix(err, "godwit: "));
    /* exactly one line */
    g_assert_true(g_str_has_suffix(err, "\n"));
    g_assert_true(strchr(err, '\n') == err + strlen(err) - 1);
}

static void test_option_errors(void)
{
    g_autofree char *elf = gwt_payload("idle");
    char *cases[][2] = {
        {g_strdup("-frobnicate"), g_strdup("invalid option")},
        {g_strdup_printf("-kernel %s -m 12Q", elf), g_strdup("invalid size")},
        {g_strdup_printf("-kernel %s -smp 0", elf), g_strdup("-smp")},
        {g_strdup("-kernel /nonexistent/k.elf"),
         g_strdup("could not load kernel '/nonexistent/k.elf'")},
        /* an x86-64 ELF is not a Multiboot kernel */
        {g_strdup("-kernel /bin/true"), g_strdup("Multiboot")},
        {g_strdup("-m 64M"), g_strdup("no kernel given")},
        {g_strdup_printf("-kernel %s -m 1E", elf),
         g_strdup("cannot allocate")},
        {g_strdup_printf("-kernel %s -serial stdio -monitor stdio", elf),
         g_strdup("stdio is used by more than one")},
        {g_strdup_printf("-kernel %s -qmp bogus:x", elf), g_strdup("-qmp")},
        {g_strdup_printf("-kernel %s -serial file:/nonexistent/dir/log",
                         elf),
         g_strdup("-serial")},
        {g_strdup_printf("-kernel %s -accel hax", elf),
         g_strdup("accelerator 'hax' is not supported")},
        {g_strdup_printf("-kernel %s -accel tcg,thread=multi", elf),
         g_strdup("thread=single")},
        {g_strdup_printf("-kernel %s -object secret,id=s0,data=x", elf),
         g_strdup("-object secret,id=s0,data=x: invalid object type: "
                  "secret")},
        {g_strdup_printf("-kernel %s -object tls-creds-x509,id=t0,"
                         "dir=/nonexistent,endpoint=server",
                         elf),
         g_strdup("Unable to access credentials /nonexistent/ca-cert.pem")},
        {g_strdup_printf("-kernel %s -object authz-simple,id=a,identity=x "
                         "-object authz-simple,id=a,identity=y",
                         elf),
         g_strdup("an object with id 'a' already exists")},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        check_error(cases[i][0], cases[i][1]);
        g_free(cases[i][0]);
        g_free(cases[i][1]);
    }
}

static void test_nothing_left_behind(void)
{
    g_autofree char *elf = gwt_payload("idle");
    g_autofree char *dir = g_dir_make_tmp("gwtest-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "q.sock", NULL);
    g_autofree char *pid = g_build_filename(dir, "pid", NULL);
    g_autofree char *bad = g_build_filename(dir, "nodir", "m.sock", NULL);
    g_autofree char *err = NULL;

    /* The second monitor cannot be opened: the first must be removed. */
    int rc = gwt_run(&err,
                     "-kernel %s -pidfile %s -qmp unix:%s,server=on,wait=off "
                     "-monitor unix:%s,server=on,wait=off",
                     elf, pid, sock, bad);
    g_assert_cmpint(rc, ==, 1);
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(pid, G_FILE_TEST_EXISTS));
    g_assert_cmpint(rmdir(dir), ==, 0); /* empty */
}

static void test_version_and_help(void)
{
    g_autofree char *err = NULL;

    g_assert_cmpint(gwt_run(&err, "-version"), ==, 0);
    g_assert_cmpint(gwt_run(NULL, "-h"), ==, 0);
}

static void test_pidfile(void)
{
    g_autofree char *elf = gwt_payload("idle");
    g_autofree char *dir = g_dir_make_tmp("gwtest-XXXXXX", NULL);
    g_autofree char *pidf = g_build_filename(dir, "godwit.pid", NULL);
    g_autofree char *text = NULL;
    GwProc *p = gwt_start("pid", "-m 64M -kernel %s -pidfile %s", elf, pidf);

    g_assert_true(g_file_get_contents(pidf, &text, NULL, NULL));
    g_assert_cmpint(atoi(text), ==, p->pid);
    g_assert_cmpint(gwt_quit(p), ==, 0);
    g_assert_false(g_file_test(pidf, G_FILE_TEST_EXISTS));
    gwt_free(p);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_func("/cmdline/errors", test_option_errors);
    g_test_add_func("/cmdline/nothing-left-behind", test_nothing_left_behind);
    g_test_add_func("/cmdline/version-help", test_version_and_help);
    g_test_add_func("/cmdline/pidfile", test_pidfile);
    return g_test_run();
}
