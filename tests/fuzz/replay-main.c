/*
 * Replays inputs through a libFuzzer target without libFuzzer: every
 * regular file of every directory (or file) named on the command line,
 * in name order, through LLVMFuzzerTestOneInput. Linked into the normal
 * (gcc) build so that CI replays the corpora and the regression inputs
 * in seconds; a crash or an assertion ends the run, like the fuzzer.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int path_cmp(const void *a, const void *b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* Runs one file; false when it cannot be read. */
static bool replay_file(const char *path)
{
    g_autoptr(GError) err = NULL;
    gchar *data;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "replay: %s\n", err->message);
        return false;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    g_free(data);
    return true;
}

/*
 * Adds `path`'s files (or `path`) to `files`; false if it cannot be read.
 * A path that does not exist is skipped: a target may have no
 * regressions/ folder yet.
 */
static bool collect(const char *path, GPtrArray *files)
{
    g_autoptr(GError) err = NULL;
    GDir *dir;
    const char *name;

    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        return true;
    }
    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        g_ptr_array_add(files, g_strdup(path));
        return true;
    }
    dir = g_dir_open(path, 0, &err);
    if (!dir) {
        fprintf(stderr, "replay: %s\n", err->message);
        return false;
    }
    while ((name = g_dir_read_name(dir))) {
        char *p = g_build_filename(path, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
            g_ptr_array_add(files, p);
        } else {
            g_free(p);
        }
    }
    g_dir_close(dir);
    return true;
}

int main(int argc, char **argv)
{
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    bool ok = true;

    for (int i = 1; i < argc; i++) {
        ok &= collect(argv[i], files);
    }
    qsort(files->pdata, files->len, sizeof(char *), path_cmp);
    for (guint i = 0; i < files->len; i++) {
        if (g_getenv("FUZZ_VERBOSE")) {
            fprintf(stderr, "%s: ", (char *)files->pdata[i]);
        }
        ok &= replay_file(files->pdata[i]);
    }
    printf("replayed %u inputs\n", files->len);
    return ok && files->len > 0 ? 0 : 1;
}
