/*
 * qtest: a destination fed a bad stream fails with a clear error naming
 * what is wrong, exits non-zero, and never crashes, hangs or writes outside
 * guest RAM. The streams are a real saved VM, truncated or corrupted at
 * known places.
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migration-helpers.h"

static char *saved;      /* the intact stream */
static gsize saved_len;
static char *work_dir;

/* Offsets in the stream, found by walking its start. */
static gsize ram_block_len_at; /* be64 used_length of pc.ram */
static gsize first_record_at;  /* be64 header of the first page record */
static gsize first_footer_at;  /* footer of the ram START section */

static uint64_t be64_at(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | (uint8_t)p[i];
    }
    return v;
}

static void put_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) {
        p[i] = (char)(v & 0xff);
    }
}

/* Saves a small verify guest to a file once. */
static void make_stream(void)
{
    MigPair *mp = mig_pair_start("64M", "verify", "vm=1 vm-bytes=8M", NULL);
    g_autofree char *file = mig_path(mp, "vm.mig");
    g_autofree char *uri = g_strdup_printf("file:%s", file);

    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 60000);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_true(g_file_get_contents(file, &saved, &saved_len, NULL));
    mig_pair_free(mp);

    /* header 8, config: 1 + 4 + len */
    gsize p = 8;
    g_assert_cmpint((uint8_t)saved[p], ==, 0x07);
    uint32_t clen = (uint8_t)saved[p + 1] << 24 | (uint8_t)saved[p + 2] << 16 |
                    (uint8_t)saved[p + 3] << 8 | (uint8_t)saved[p + 4];
    p += 5 + clen;
    /* START section: type, id, "ram", instance, version */
    g_assert_cmpint((uint8_t)saved[p], ==, 0x01);
    p += 1 + 4;
    g_assert_cmpint((uint8_t)saved[p], ==, 3);
    g_assert_cmpmem(saved + p + 1, 3, "ram", 3);
    p += 1 + 3 + 4 + 4;
    p += 8; /* total | MEM_SIZE */
    g_assert_cmpint((uint8_t)saved[p], ==, 6);
    p += 1 + 6;
    ram_block_len_at = p;
    g_assert_cmpint(be64_at(saved + p), ==, 64 << 20);
    p += 8 + 8; /* length, EOS */
    first_footer_at = p;
    g_assert_cmpint((uint8_t)saved[p], ==, 0x7e);
    p += 5;
    g_assert_cmpint((uint8_t)saved[p], ==, 0x02); /* PART */
    first_record_at = p + 5;
}

typedef void (*Mangle)(char *buf, gsize *len);

static void m_truncate_half(char *b, gsize *len) { *len /= 2; }
static void m_truncate_header(char *b, gsize *len) { *len = 6; }
static void m_truncate_end(char *b, gsize *len) { *len -= *len / 1000 + 200; }
static void m_magic(char *b, gsize *len) { b[0] = 'X'; }
static void m_version(char *b, gsize *len) { b[7] = 9; }
static void m_machine(char *b, gsize *len) { b[13] = 'X'; }
static void m_block_len(char *b, gsize *len)
{
    put_be64(b + ram_block_len_at, 128 << 20);
}
static void m_flags(char *b, gsize *len)
{
    b[first_record_at + 7] |= 0x40; /* XBZRLE, not negotiated */
}
static void m_offset(char *b, gsize *len)
{
    uint64_t h = be64_at(b + first_record_at);
    put_be64(b + first_record_at, (h & 0xfff) | (1ull << 40));
}
static void m_footer(char *b, gsize *len) { b[first_footer_at] = 0x7f; }
static void m_section_type(char *b, gsize *len)
{
    b[first_footer_at + 5] = 0x33;
}

static const struct {
    const char *name;
    Mangle fn;
    const char *error;
} cases[] = {
    {"truncated-half", m_truncate_half, "unexpected end of migration stream"},
    {"truncated-header", m_truncate_header, "stream header"},
    {"truncated-end", m_truncate_end, "end of migration stream"},
    {"bad-magic", m_magic, "not a migration stream"},
    {"bad-version", m_version, "unsupported migration stream version"},
    {"other-machine", m_machine, "Machine type received is"},
    {"block-length", m_block_len, "Length mismatch: pc.ram"},
    {"unknown-flags", m_flags, "Unknown combination of migration flags"},
    {"offset-outside-ram", m_offset, "Illegal RAM offset"},
    {"footer", m_footer, "Missing section footer for ram"},
    {"section-type", m_section_type, "Unknown savevm section type"},
};

static void test_bad_stream(gconstpointer data)
{
    size_t i = GPOINTER_TO_SIZE(data);
    g_autofree char *buf = g_memdup2(saved, saved_len);
    gsize len = saved_len;
    g_autofree char *path = g_build_filename(work_dir, cases[i].name, NULL);
    g_autofree char *err = NULL;
    int64_t t0 = gwt_now_ms();

    cases[i].fn(buf, &len);
    g_assert_true(g_file_set_contents(path, buf, (gssize)len, NULL));
    int rc = gwt_run(&err, "-m 64M -S -incoming file:%s -serial none "
                           "-nodefaults",
                     path);
    g_test_message("%s: exit %d after %" G_GINT64_FORMAT " ms: %s",
                   cases[i].name, rc, gwt_now_ms() - t0, err);
    g_assert_cmpint(rc, ==, 1);
    g_assert_nonnull(strstr(err, "load of migration failed"));
    g_assert_nonnull(strstr(err, cases[i].error));
    unlink(path);
}

int main(int argc, char **argv)
{
    int r;

    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    work_dir = g_dir_make_tmp("gwstream-XXXXXX", NULL);
    make_stream();
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *p =
            g_strdup_printf("/migration/stream/%s", cases[i].name);
        g_test_add_data_func(p, GSIZE_TO_POINTER(i), test_bad_stream);
    }
    r = g_test_run();
    rmdir(work_dir);
    return r;
}
