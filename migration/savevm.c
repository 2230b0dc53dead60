/*
 * Section registry and the stream structure in QEMU's format: writing the
 * header, configuration, START/PART/END/FULL sections with footers, EOF and
 * the JSON VM description; reading and validating all of it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "godwit/ramblock.h"
#include "migration/channel.h"
#include "savevm-int.h"

struct SaveStateEntry {
    const SaveStateHandler *ops;
    void *opaque;
    uint32_t instance_id;
    uint32_t section_id;
    bool loaded; /* destination: section seen (START/FULL) */
    bool ended;  /* destination: iterable's END seen */
};

static SaveStateEntry entries[SAVEVM_MAX_SECTIONS];
static int nr_entries;

static bool is_iterable(const SaveStateHandler *h)
{
    return h->save_setup != NULL;
}

void register_savevm(const SaveStateHandler *h, uint32_t instance_id,
                     void *opaque)
{
    g_assert(nr_entries < SAVEVM_MAX_SECTIONS);
    g_assert(h->idstr && strlen(h->idstr) <= 255 && h->load_state);
    if (is_iterable(h)) {
        g_assert(h->save_iterate && h->save_complete && h->save_pending);
    } else {
        g_assert(h->save_state && h->describe);
    }
    for (int i = 0; i < nr_entries; i++) {
        g_assert(strcmp(entries[i].ops->idstr, h->idstr) ||
                 entries[i].instance_id != instance_id);
    }
    entries[nr_entries] = (SaveStateEntry){
        .ops = h,
        .opaque = opaque,
        .instance_id = instance_id,
        .section_id = (uint32_t)nr_entries,
    };
    nr_entries++;
}

void unregister_savevm_all(void)
{
    nr_entries = 0;
}

/* ---- saving -------------------------------------------------------------- */

static void section_header(QEMUFile *f, SaveStateEntry *se, uint8_t type)
{
    qemu_put_byte(f, type);
    qemu_put_be32(f, se->section_id);
    if (type == QEMU_VM_SECTION_START || type == QEMU_VM_SECTION_FULL) {
        qemu_put_counted_string(f, se->ops->idstr);
        qemu_put_be32(f, se->instance_id);
        qemu_put_be32(f, se->ops->version_id);
    }
}

static void section_footer(QEMUFile *f, SaveStateEntry *se)
{
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, se->section_id);
}

void qemu_savevm_state_header(QEMUFile *f)
{
    qemu_put_be32(f, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(f, QEMU_VM_FILE_VERSION);
    /* configuration: be32 length, then the machine type */
    qemu_put_byte(f, QEMU_VM_CONFIGURATION);
    qemu_put_be32(f, strlen(GODWIT_MACHINE_TYPE));
    qemu_put_buffer(f, GODWIT_MACHINE_TYPE, strlen(GODWIT_MACHINE_TYPE));
}

bool qemu_savevm_state_setup(QEMUFile *f, GError **errp)
{
    for (int i = 0; i < nr_entries; i++) {
        SaveStateEntry *se = &entries[i];
        if (!is_iterable(se->ops)) {
            continue;
        }
        section_header(f, se, QEMU_VM_SECTION_START);
        if (!se->ops->save_setup(f, se->opaque, errp)) {
            g_prefix_error(errp, "%s: ", se->ops->idstr);
            return false;
        }
        section_footer(f, se);
    }
    return qemu_file_check(f, errp);
}

int qemu_savevm_state_iterate(QEMUFile *f)
{
    int all_done = 1;

    for (int i = 0; i < nr_entries; i++) {
        SaveStateEntry *se = &entries[i];
        if (!is_iterable(se->ops)) {
            continue;
        }
        section_header(f, se, QEMU_VM_SECTION_PART);
        int r = se->ops->save_iterate(f, se->opaque);
        section_footer(f, se);
        if (r < 0) {
            return r;
        }
        all_done &= r;
    }
    return qemu_file_get_error(f) ? qemu_file_get_error(f) : all_done;
}

uint64_t qemu_savevm_state_pending(void)
{
    uint64_t total = 0;

    for (int i = 0; i < nr_entries; i++) {
        if (is_iterable(entries[i].ops)) {
            total += entries[i].ops->save_pending(entries[i].opaque);
        }
    }
    return total;
}

/* The JSON VM description written after EOF. */
static char *vmdesc_json(void)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "page_size");
    json_builder_add_int_value(b, 4096);
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    for (int i = 0; i < nr_entries; i++) {
        SaveStateEntry *se = &entries[i];
        if (is_iterable(se->ops)) {
            continue;
        }
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, se->ops->idstr);
        json_builder_set_member_name(b, "instance_id");
        json_builder_add_int_value(b, se->instance_id);
        json_builder_set_member_name(b, "vmsd_name");
        json_builder_add_string_value(b, se->ops->idstr);
        json_builder_set_member_name(b, "version");
        json_builder_add_int_value(b, se->ops->version_id);
        se->ops->describe(b, se->opaque);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

/* END sections of the iterables, or FULL sections of the rest. */
static bool complete_sections(QEMUFile *f, bool iterables, GError **errp)
{
    for (int i = 0; i < nr_entries; i++) {
        SaveStateEntry *se = &entries[i];
        bool iter = is_iterable(se->ops);
        bool ok;
        if (iter != iterables) {
            continue;
        }
        section_header(f, se,
                       iter ? QEMU_VM_SECTION_END : QEMU_VM_SECTION_FULL);
        ok = iter ? se->ops->save_complete(f, se->opaque, errp)
                  : se->ops->save_state(f, se->opaque, errp);
        if (!ok) {
            g_prefix_error(errp, "%s: ", se->ops->idstr);
            return false;
        }
        section_footer(f, se);
    }
    return true;
}

bool qemu_savevm_state_complete_devices(QEMUFile *f, GError **errp)
{
    return complete_sections(f, false, errp) && qemu_file_check(f, errp);
}

bool qemu_savevm_state_complete_postcopy(QEMUFile *f, GError **errp)
{
    if (!complete_sections(f, true, errp)) {
        return false;
    }
    qemu_put_byte(f, QEMU_VM_EOF);
    qemu_fflush(f);
    return qemu_file_check(f, errp);
}

bool qemu_savevm_state_complete(QEMUFile *f, GError **errp)
{
    if (!complete_sections(f, true, errp) ||
        !complete_sections(f, false, errp)) {
        return false;
    }
    qemu_put_byte(f, QEMU_VM_EOF);

    g_autofree char *desc = vmdesc_json();
    qemu_put_byte(f, QEMU_VM_VMDESCRIPTION);
    qemu_put_be32(f, (uint32_t)strlen(desc));
    qemu_put_buffer(f, desc, strlen(desc));
    qemu_fflush(f);
    return qemu_file_check(f, errp);
}

void qemu_savevm_state_cleanup(void)
{
    for (int i = 0; i < nr_entries; i++) {
        if (entries[i].ops->save_cleanup) {
            entries[i].ops->save_cleanup(entries[i].opaque);
        }
    }
}

const char *loadvm_first_missing_device(uint32_t *instance)
{
    for (int i = 0; i < nr_entries; i++) {
        if (!is_iterable(entries[i].ops) && !entries[i].ended) {
            *instance = entries[i].instance_id;
            return entries[i].ops->idstr;
        }
    }
    return NULL;
}

/* ---- loading ------------------------------------------------------------- */

bool load_fail(QEMUFile *f, GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (qemu_file_get_error(f)) {
        /* the stream broke while reading what `msg` names */
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s: %s", msg,
                    qemu_file_error_message(f));
    } else {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s", msg);
    }
    return false;
}

static bool load_header(QEMUFile *f, GError **errp)
{
    uint32_t magic = qemu_get_be32(f);
    uint32_t version = qemu_get_be32(f);
    char name[256];

    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "reading the stream header");
    }
    if (magic != QEMU_VM_FILE_MAGIC) {
        return load_fail(f, errp,
                         "not a migration stream (magic 0x%08x, expected "
                         "0x%08x \"QEVM\")",
                         magic, QEMU_VM_FILE_MAGIC);
    }
    if (version == QEMU_VM_FILE_VERSION_COMPAT) {
        return load_fail(f, errp,
                         "SaveVM v2 format is obsolete and don't "
                         "work anymore");
    }
    if (version != QEMU_VM_FILE_VERSION) {
        return load_fail(f, errp, "unsupported migration stream version %u",
                         version);
    }
    if (qemu_get_byte(f) != QEMU_VM_CONFIGURATION) {
        return load_fail(f, errp, "Configuration section missing");
    }
    uint32_t len = qemu_get_be32(f);
    if (len > 255) {
        return load_fail(f, errp, "machine type name of %u bytes is too long",
                         len);
    }
    qemu_get_buffer(f, name, len);
    name[len] = '\0';
    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "reading the configuration section");
    }
    if (strcmp(name, GODWIT_MACHINE_TYPE)) {
        return load_fail(f, errp,
                         "Machine type received is '%s' and local is '%s'",
                         name, GODWIT_MACHINE_TYPE);
    }
    return true;
}

static SaveStateEntry *find_entry(const char *idstr, uint32_t instance)
{
    for (int i = 0; i < nr_entries; i++) {
        if (!strcmp(entries[i].ops->idstr, idstr) &&
            entries[i].instance_id == instance) {
            return &entries[i];
        }
    }
    return NULL;
}

static bool check_footer(QEMUFile *f, SaveStateEntry *se, uint32_t id,
                         GError **errp)
{
    uint8_t b = qemu_get_byte(f);
    uint32_t got;

    if (b != QEMU_VM_SECTION_FOOTER) {
        return load_fail(f, errp, "Missing section footer for %s",
                         se->ops->idstr);
    }
    got = qemu_get_be32(f);
    if (got != id) {
        return load_fail(f, errp,
                         "Mismatched section id in footer for %s - read "
                         "0x%x expected 0x%x",
                         se->ops->idstr, got, id);
    }
    return !qemu_file_get_error(f) || load_fail(f, errp, "footer");
}

bool load_section_start(QEMUFile *f, SectionMap *map, uint8_t type,
                        GError **errp)
{
    uint32_t id = qemu_get_be32(f);
    char idstr[256];
    qemu_get_counted_string(f, idstr);
    uint32_t instance = qemu_get_be32(f);
    uint32_t version = qemu_get_be32(f);
    SaveStateEntry *se;

    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "section header");
    }
    se = find_entry(idstr, instance);
    if (!se) {
        return load_fail(f, errp,
                         "Unknown savevm section or instance '%s' %u. Make "
                         "sure that your current VM setup matches your "
                         "saved VM setup",
                         idstr, instance);
    }
    if (version > se->ops->version_id) {
        return load_fail(f, errp,
                         "savevm: unsupported version %u for '%s' "
                         "v%u",
                         version, idstr, se->ops->version_id);
    }
    if (se->loaded || (type == QEMU_VM_SECTION_START) != is_iterable(se->ops)) {
        return load_fail(f, errp, "unexpected %s section for '%s' %u",
                         se->loaded ? "repeated" : "kind of", idstr, instance);
    }
    if (map->n == SAVEVM_MAX_SECTIONS) {
        return load_fail(f, errp, "too many sections");
    }
    map->ids[map->n] = id;
    map->se[map->n] = se;
    /* the post-copy listen thread looks sections up meanwhile */
    atomic_store_explicit(&map->n, map->n + 1, memory_order_release);
    se->loaded = true;
    if (!se->ops->load_state(f, se->opaque, version, errp)) {
        g_prefix_error(errp,
                       "error while loading state for instance 0x%x "
                       "of device '%s': ",
                       instance, idstr);
        return false;
    }
    if (type == QEMU_VM_SECTION_FULL) {
        se->ended = true;
    }
    return check_footer(f, se, id, errp);
}

static bool load_section_part(QEMUFile *f, SectionMap *map, uint8_t type,
                              GError **errp)
{
    uint32_t id = qemu_get_be32(f);
    SaveStateEntry *se = NULL;

    int n = atomic_load_explicit(&map->n, memory_order_acquire);

    for (int i = 0; i < n; i++) {
        if (map->ids[i] == id) {
            se = map->se[i];
        }
    }
    if (!se || !is_iterable(se->ops) || se->ended) {
        return load_fail(f, errp, "Unknown savevm section %u", id);
    }
    if (!se->ops->load_state(f, se->opaque, se->ops->version_id, errp)) {
        g_prefix_error(errp,
                       "error while loading state section id %u(%s): ", id,
                       se->ops->idstr);
        return false;
    }
    if (type == QEMU_VM_SECTION_END) {
        se->ended = true;
    }
    return check_footer(f, se, id, errp);
}

/* After EOF: the optional VM description, read and dropped. */
static bool load_trailer(QEMUFile *f, GError **errp)
{
    if (qemu_file_at_eof(f)) {
        return true;
    }
    if (qemu_get_byte(f) != QEMU_VM_VMDESCRIPTION) {
        return load_fail(f, errp,
                         "unexpected data after the end of the "
                         "migration stream");
    }
    uint32_t len = qemu_get_be32(f);
    if (len > SAVEVM_VMDESC_MAX) {
        return load_fail(f, errp, "VM description of %u bytes is too large",
                         len);
    }
    /*
     * Dropped a piece at a time: a length alone must not make us allocate
     * 64 MiB (a 5-byte trailer did; tests/fuzz/regressions/).
     */
    char piece[4096];
    while (len && !qemu_file_get_error(f)) {
        uint32_t n = MIN(len, (uint32_t)sizeof(piece));
        qemu_get_buffer(f, piece, n);
        len -= n;
    }
    return !qemu_file_get_error(f) ||
           load_fail(f, errp, "reading the VM description");
}

bool load_check_complete(GError **errp)
{
    for (int i = 0; i < nr_entries; i++) {
        if (!entries[i].ended) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "section '%s' instance %u is missing from the "
                        "migration stream",
                        entries[i].ops->idstr, entries[i].instance_id);
            return false;
        }
    }
    return true;
}

/*
 * Sections and commands until EOF (the main stream) or, in a package,
 * until POSTCOPY_RUN or the package's end.
 */
bool load_main(QEMUFile *f, LoadContext *ctx, GError **errp)
{
    for (;;) {
        bool ok, quit = false;
        uint8_t type;

        if (ctx->in_package && qemu_file_at_eof(f)) {
            return true;
        }
        type = qemu_get_byte(f);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "reading a section");
        }
        switch (type) {
        case QEMU_VM_EOF:
            if (ctx->in_package) {
                return load_fail(f, errp, "EOF inside a package");
            }
            /*
             * After post-copy the source sends no description and keeps
             * the connection open until our SHUT: don't wait for more.
             */
            if (ctx->at_eof) {
                return true; /* the package's thread checks, after it */
            }
            return load_check_complete(errp) &&
                   (ctx->postcopy == POSTCOPY_INCOMING_RUNNING ||
                    load_trailer(f, errp));
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
            ok = load_section_start(f, ctx->map, type, errp);
            break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
            ok = !ctx->in_package ? load_section_part(f, ctx->map, type, errp)
                                  : load_fail(f, errp,
                                              "RAM section inside "
                                              "a package");
            break;
        case QEMU_VM_COMMAND:
            ok = load_command(f, ctx, &quit, errp);
            break;
        default:
            ok = load_fail(f, errp, "Unknown savevm section type %u", type);
            break;
        }
        if (!ok) {
            return false;
        }
        if (quit && ctx->in_package) {
            return true;
        }
        if (quit) {
            /* a package whose listen thread read the stream to EOF */
            return load_check_complete(errp);
        }
    }
}

bool qemu_loadvm_state(QEMUFile *f, GError **errp)
{
    g_autofree SectionMap *map = g_new0(SectionMap, 1);
    GMutex main_lock;
    LoadContext ctx = {.map = map, .main_f = f, .main_lock = &main_lock};
    bool ok = load_header(f, errp);

    for (int i = 0; i < nr_entries; i++) {
        entries[i].loaded = entries[i].ended = false;
    }
    g_mutex_init(&main_lock);
    if (ok) {
        ok = load_main(f, &ctx, errp);
    }
    g_mutex_clear(&main_lock);
    for (int i = 0; i < nr_entries; i++) {
        if (entries[i].ops->load_cleanup) {
            entries[i].ops->load_cleanup(entries[i].opaque);
        }
    }
    return ok;
}
