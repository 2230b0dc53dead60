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
#include "savevm.h"

#define SAVEVM_MAX_SECTIONS 300

typedef struct SaveStateEntry {
    const SaveStateHandler *ops;
    void *opaque;
    uint32_t instance_id;
    uint32_t section_id;
    bool loaded; /* destination: section seen (START/FULL) */
    bool ended;  /* destination: iterable's END seen */
} SaveStateEntry;

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

/* u8 QEMU_VM_COMMAND, be16 command, be16 length, then the data. */
static void send_command(QEMUFile *f, uint16_t cmd, uint16_t len,
                         const uint8_t *data)
{
    qemu_put_byte(f, QEMU_VM_COMMAND);
    qemu_put_be16(f, cmd);
    qemu_put_be16(f, len);
    if (len) {
        qemu_put_buffer(f, data, len);
    }
}

static void put_be64_at(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

void qemu_savevm_send_open_return_path(QEMUFile *f)
{
    send_command(f, MIG_CMD_OPEN_RETURN_PATH, 0, NULL);
}

void qemu_savevm_send_ping(QEMUFile *f, uint32_t value)
{
    uint8_t buf[4] = {value >> 24, value >> 16, value >> 8, value};

    send_command(f, MIG_CMD_PING, sizeof(buf), buf);
}

void qemu_savevm_send_postcopy_advise(QEMUFile *f)
{
    uint8_t buf[16];

    /* every block has 4 KiB pages: the summary is that one size */
    put_be64_at(buf, GW_PAGE_SIZE);
    put_be64_at(buf + 8, GW_PAGE_SIZE);
    send_command(f, MIG_CMD_POSTCOPY_ADVISE, sizeof(buf), buf);
}

void qemu_savevm_send_postcopy_listen(QEMUFile *f)
{
    send_command(f, MIG_CMD_POSTCOPY_LISTEN, 0, NULL);
}

void qemu_savevm_send_postcopy_run(QEMUFile *f)
{
    send_command(f, MIG_CMD_POSTCOPY_RUN, 0, NULL);
}

void qemu_savevm_send_postcopy_ram_discard(QEMUFile *f, const char *block,
                                           int n, const uint64_t *start,
                                           const uint64_t *length)
{
    size_t nlen = strlen(block);
    uint8_t buf[3 + 255 + 16 * MIG_DISCARD_MAX_PAIRS];
    size_t len = 0;

    g_assert(nlen <= 255 && n > 0 && n <= MIG_DISCARD_MAX_PAIRS);
    buf[len++] = 0; /* version */
    buf[len++] = (uint8_t)nlen;
    memcpy(buf + len, block, nlen);
    len += nlen;
    buf[len++] = 0;
    for (int i = 0; i < n; i++) {
        put_be64_at(buf + len, start[i]);
        put_be64_at(buf + len + 8, length[i]);
        len += 16;
    }
    send_command(f, MIG_CMD_POSTCOPY_RAM_DISCARD, (uint16_t)len, buf);
}

void qemu_savevm_send_packaged(QEMUFile *f, const uint8_t *buf, size_t len)
{
    uint8_t hdr[4] = {len >> 24, len >> 16, len >> 8, len};

    g_assert(len <= MIG_PACKAGED_MAX);
    send_command(f, MIG_CMD_PACKAGED, sizeof(hdr), hdr);
    qemu_put_buffer(f, buf, len);
}

void qemu_savevm_send_recv_bitmap(QEMUFile *f, const char *block)
{
    uint8_t buf[256];
    size_t n = strlen(block);

    g_assert(n <= 255);
    buf[0] = (uint8_t)n;
    memcpy(buf + 1, block, n);
    send_command(f, MIG_CMD_RECV_BITMAP, (uint16_t)(n + 1), buf);
}

void qemu_savevm_send_postcopy_resume(QEMUFile *f)
{
    send_command(f, MIG_CMD_POSTCOPY_RESUME, 0, NULL);
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
        section_header(f, se, iter ? QEMU_VM_SECTION_END
                                   : QEMU_VM_SECTION_FULL);
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

/* ---- loading ------------------------------------------------------------- */

static bool load_fail(QEMUFile *f, GError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static bool load_fail(QEMUFile *f, GError **errp, const char *fmt, ...)
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
        return load_fail(f, errp, "SaveVM v2 format is obsolete and don't "
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

/* Maps the source's section ids to our entries (START/FULL announce them). */
typedef struct SectionMap {
    uint32_t ids[SAVEVM_MAX_SECTIONS];
    SaveStateEntry *se[SAVEVM_MAX_SECTIONS];
    _Atomic int n;
} SectionMap;

static bool load_section_start(QEMUFile *f, SectionMap *map, uint8_t type,
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
        return load_fail(f, errp, "savevm: unsupported version %u for '%s' "
                                  "v%u",
                         version, idstr, se->ops->version_id);
    }
    if (se->loaded || (type == QEMU_VM_SECTION_START) !=
                          is_iterable(se->ops)) {
        return load_fail(f, errp, "unexpected %s section for '%s' %u",
                         se->loaded ? "repeated" : "kind of", idstr,
                         instance);
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
        g_prefix_error(errp, "error while loading state for instance 0x%x "
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
        g_prefix_error(errp, "error while loading state section id %u(%s): ",
                       id, se->ops->idstr);
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
        return load_fail(f, errp, "unexpected data after the end of the "
                                  "migration stream");
    }
    uint32_t len = qemu_get_be32(f);
    if (len > SAVEVM_VMDESC_MAX) {
        return load_fail(f, errp, "VM description of %u bytes is too large",
                         len);
    }
    g_autofree char *desc = g_malloc(len);
    qemu_get_buffer(f, desc, len);
    return !qemu_file_get_error(f) ||
           load_fail(f, errp, "reading the VM description");
}

static bool load_check_complete(GError **errp)
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

/* ---- commands, destination side ----------------------------------------- */

/* QEMU's PostcopyState, destination: the order commands may come in. */
typedef enum PostcopyIncoming {
    POSTCOPY_INCOMING_NONE,
    POSTCOPY_INCOMING_ADVISE,
    POSTCOPY_INCOMING_DISCARD,
    POSTCOPY_INCOMING_LISTENING,
    POSTCOPY_INCOMING_RUNNING,
} PostcopyIncoming;

static const char *const postcopy_incoming_names[] = {
    "none", "advise", "discard", "listen", "running",
};

typedef struct LoadContext {
    SectionMap *map;
    PostcopyIncoming postcopy;
    bool in_package;
    bool return_path;
    QEMUFile *main_f; /* the main stream (a package is read apart) */
    /*
     * Post-copy: from LISTEN on, the listen thread reads the main stream
     * (pages) while this thread loads the rest of the package: loading a
     * device may need guest pages (e.g. a vCPU task that walks the
     * guest's GDT), which only the main stream brings.
     */
    pthread_t listen_thread;
    bool listening;
    bool listen_ok;     /* the listen thread's result */
    GError *listen_err;
    bool at_eof;        /* this context reads until EOF, checked by caller */
} LoadContext;

static const LoadvmCommandOps *command_ops;

void qemu_loadvm_set_command_ops(const LoadvmCommandOps *ops)
{
    command_ops = ops;
}

static bool load_main(QEMUFile *f, LoadContext *ctx, GError **errp);

static void *listen_thread(void *opaque)
{
    LoadContext *ctx = opaque;
    LoadContext lctx = {
        .map = ctx->map,
        .postcopy = POSTCOPY_INCOMING_RUNNING,
        .return_path = true,
        .main_f = ctx->main_f,
        .at_eof = true,
    };

    pthread_setname_np(pthread_self(), "mig/dst/listen");
    for (;;) {
        QEMUFile *nf;
        ctx->listen_ok = load_main(lctx.main_f, &lctx, &ctx->listen_err);
        /* a broken connection pauses; a malformed stream fails */
        if (ctx->listen_ok || !command_ops->postcopy_pause ||
            !qemu_file_get_error(lctx.main_f)) {
            break;
        }
        nf = command_ops->postcopy_pause(lctx.main_f,
                                         ctx->listen_err->message);
        if (!nf) {
            break;
        }
        g_clear_error(&ctx->listen_err);
        lctx.main_f = ctx->main_f = nf;
    }
    if (!ctx->listen_ok && command_ops->postcopy_abort) {
        /* nothing more arrives: let waiting threads go, the load fails */
        command_ops->postcopy_abort();
    }
    return NULL;
}

/* Joins the listen thread: its result, or false with *errp. */
static bool listen_join(LoadContext *ctx, GError **errp)
{
    pthread_join(ctx->listen_thread, NULL);
    ctx->listening = false;
    if (!ctx->listen_ok) {
        g_propagate_error(errp, g_steal_pointer(&ctx->listen_err));
        return false;
    }
    return true;
}

static bool command_wrong_state(QEMUFile *f, LoadContext *ctx,
                                const char *cmd, GError **errp)
{
    return load_fail(f, errp, "%s in wrong postcopy state (%s)", cmd,
                     postcopy_incoming_names[ctx->postcopy]);
}

static bool load_cmd_advise(QEMUFile *f, LoadContext *ctx, uint16_t len,
                            GError **errp)
{
    uint64_t summary, tps;

    if (ctx->postcopy != POSTCOPY_INCOMING_NONE) {
        return command_wrong_state(f, ctx, "CMD_POSTCOPY_ADVISE", errp);
    }
    if (len != 16) {
        /* 0 bytes: dirty bitmaps only, which godwit does not have */
        return load_fail(f, errp, "CMD_POSTCOPY_ADVISE invalid length (%u)",
                         len);
    }
    summary = qemu_get_be64(f);
    tps = qemu_get_be64(f);
    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "CMD_POSTCOPY_ADVISE");
    }
    if (!command_ops || !command_ops->postcopy_advise(summary, tps, errp)) {
        return false;
    }
    ctx->postcopy = POSTCOPY_INCOMING_ADVISE;
    return true;
}

static bool load_cmd_discard(QEMUFile *f, LoadContext *ctx, uint16_t len,
                             GError **errp)
{
    char block[256];
    uint8_t b;

    if (ctx->postcopy != POSTCOPY_INCOMING_ADVISE &&
        ctx->postcopy != POSTCOPY_INCOMING_DISCARD) {
        return command_wrong_state(f, ctx, "CMD_POSTCOPY_RAM_DISCARD", errp);
    }
    if (len < 1 + 1 + 1 + 1 + 2 * 8) {
        return load_fail(f, errp,
                         "CMD_POSTCOPY_RAM_DISCARD invalid length (%u)", len);
    }
    b = qemu_get_byte(f);
    if (b != 0) {
        return load_fail(f, errp,
                         "CMD_POSTCOPY_RAM_DISCARD invalid version (%u)", b);
    }
    qemu_get_counted_string(f, block);
    b = qemu_get_byte(f);
    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "CMD_POSTCOPY_RAM_DISCARD");
    }
    if (b != 0) {
        return load_fail(f, errp, "CMD_POSTCOPY_RAM_DISCARD missing nil (%u)",
                         b);
    }
    if (len < 3 + strlen(block) || (len - 3 - strlen(block)) % 16) {
        return load_fail(f, errp,
                         "CMD_POSTCOPY_RAM_DISCARD invalid length (%u)", len);
    }
    ctx->postcopy = POSTCOPY_INCOMING_DISCARD;
    for (size_t left = len - 3 - strlen(block); left; left -= 16) {
        uint64_t start = qemu_get_be64(f);
        uint64_t length = qemu_get_be64(f);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "CMD_POSTCOPY_RAM_DISCARD");
        }
        if (!command_ops->postcopy_discard(block, start, length, errp)) {
            return false;
        }
    }
    return true;
}

static bool load_cmd_packaged(QEMUFile *f, LoadContext *ctx, bool *quit,
                              GError **errp)
{
    uint32_t len = qemu_get_be32(f);
    g_autofree uint8_t *buf = NULL;
    MigChannel *mem;
    QEMUFile *pf;
    bool ok;

    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "CMD_PACKAGED");
    }
    if (ctx->in_package) {
        return load_fail(f, errp, "CMD_PACKAGED inside a package");
    }
    if (len > MIG_PACKAGED_MAX) {
        return load_fail(f, errp, "Unreasonably large packaged state: %u",
                         len);
    }
    buf = g_malloc(len ? len : 1);
    qemu_get_buffer(f, buf, len);
    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "reading a package of %u bytes", len);
    }
    mem = mig_channel_new_memory(errp);
    if (!mem) {
        return false;
    }
    struct iovec iov = {buf, len};
    if (len && mig_channel_writev_all(mem, &iov, 1) != 1) {
        mig_channel_close(mem, NULL);
        return load_fail(f, errp, "cannot buffer the package");
    }
    if (!mig_channel_rewind(mem, errp)) {
        mig_channel_close(mem, NULL);
        return false;
    }
    pf = qemu_file_new_input(mem);
    ctx->in_package = true;
    ok = load_main(pf, ctx, errp);
    ctx->in_package = false;
    if (ok && ctx->postcopy != POSTCOPY_INCOMING_RUNNING) {
        ok = load_fail(f, errp, "the package ended without CMD_POSTCOPY_RUN");
    }
    qemu_fclose(pf, NULL); /* closes the memory channel */
    if (ctx->listening) {
        if (!ok) {
            /* the listen thread must not wait for a stream we give up */
            qemu_file_shutdown(ctx->main_f);
            listen_join(ctx, NULL);
            return false;
        }
        /* it read the main stream to its EOF */
        return listen_join(ctx, errp) && (*quit = true);
    }
    return ok;
}

/* One QEMU_VM_COMMAND; *quit is set after POSTCOPY_RUN (package ends). */
static bool load_command(QEMUFile *f, LoadContext *ctx, bool *quit,
                         GError **errp)
{
    uint16_t cmd = qemu_get_be16(f);
    uint16_t len = qemu_get_be16(f);
    static const uint16_t fixed_len[MIG_CMD_MAX] = {
        [MIG_CMD_OPEN_RETURN_PATH] = 0, [MIG_CMD_PING] = 4,
        [MIG_CMD_POSTCOPY_LISTEN] = 0, [MIG_CMD_POSTCOPY_RUN] = 0,
        [MIG_CMD_PACKAGED] = 4, [MIG_CMD_POSTCOPY_RESUME] = 0,
    };

    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "reading a command");
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
    case MIG_CMD_PING:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_PACKAGED:
    case MIG_CMD_POSTCOPY_RESUME:
        if (len != fixed_len[cmd]) {
            return load_fail(f, errp, "command %u received with bad length "
                                      "- expecting %u, received %u",
                             cmd, fixed_len[cmd], len);
        }
        break;
    default:
        break;
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        if (ctx->return_path) {
            return load_fail(f, errp, "CMD_OPEN_RETURN_PATH called when RP "
                                      "already open");
        }
        if (!command_ops || !command_ops->open_return_path(errp)) {
            return false;
        }
        ctx->return_path = true;
        return true;
    case MIG_CMD_PING: {
        uint32_t v = qemu_get_be32(f);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "CMD_PING");
        }
        if (!ctx->return_path) {
            return load_fail(f, errp, "CMD_PING (0x%x) received with no "
                                      "return path",
                             v);
        }
        return command_ops->ping(v, errp);
    }
    case MIG_CMD_POSTCOPY_ADVISE:
        return load_cmd_advise(f, ctx, len, errp);
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
        return load_cmd_discard(f, ctx, len, errp);
    case MIG_CMD_POSTCOPY_LISTEN:
        if (ctx->postcopy != POSTCOPY_INCOMING_ADVISE &&
            ctx->postcopy != POSTCOPY_INCOMING_DISCARD) {
            return command_wrong_state(f, ctx, "CMD_POSTCOPY_LISTEN", errp);
        }
        if (!ctx->return_path) {
            return load_fail(f, errp, "CMD_POSTCOPY_LISTEN without a return "
                                      "path to ask for pages on");
        }
        if (!command_ops->postcopy_listen(errp)) {
            return false;
        }
        ctx->postcopy = POSTCOPY_INCOMING_LISTENING;
        if (ctx->in_package) {
            int e = pthread_create(&ctx->listen_thread, NULL, listen_thread,
                                   ctx);
            if (e) {
                return gw_error_errno(errp, e, "cannot create the post-copy "
                                               "listen thread");
            }
            ctx->listening = true;
        }
        return true;
    case MIG_CMD_POSTCOPY_RUN:
        if (ctx->postcopy != POSTCOPY_INCOMING_LISTENING) {
            return command_wrong_state(f, ctx, "CMD_POSTCOPY_RUN", errp);
        }
        /* every device section came before RUN: it must be complete */
        for (int i = 0; i < nr_entries; i++) {
            if (!is_iterable(entries[i].ops) && !entries[i].ended) {
                return load_fail(f, errp, "CMD_POSTCOPY_RUN before section "
                                          "'%s' instance %u",
                                 entries[i].ops->idstr,
                                 entries[i].instance_id);
            }
        }
        if (!command_ops->postcopy_run(errp)) {
            return false;
        }
        ctx->postcopy = POSTCOPY_INCOMING_RUNNING;
        *quit = true;
        return true;
    case MIG_CMD_PACKAGED:
        return load_cmd_packaged(f, ctx, quit, errp);
    case MIG_CMD_RECV_BITMAP: {
        char block[256];
        if (ctx->postcopy != POSTCOPY_INCOMING_RUNNING || ctx->in_package) {
            return command_wrong_state(f, ctx, "CMD_RECV_BITMAP", errp);
        }
        qemu_get_counted_string(f, block);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "CMD_RECV_BITMAP");
        }
        if (len != 1 + strlen(block)) {
            return load_fail(f, errp, "CMD_RECV_BITMAP: invalid length %u "
                                      "for block '%s'",
                             len, block);
        }
        return command_ops->recv_bitmap(block, errp);
    }
    case MIG_CMD_POSTCOPY_RESUME:
        if (ctx->postcopy != POSTCOPY_INCOMING_RUNNING || ctx->in_package) {
            return command_wrong_state(f, ctx, "CMD_POSTCOPY_RESUME", errp);
        }
        return command_ops->postcopy_resume(errp);
    default:
        return load_fail(f, errp, "migration command %u is not supported by "
                                  "godwit (len %u)",
                         cmd, len);
    }
}

/*
 * Sections and commands until EOF (the main stream) or, in a package,
 * until POSTCOPY_RUN or the package's end.
 */
static bool load_main(QEMUFile *f, LoadContext *ctx, GError **errp)
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
                                  : load_fail(f, errp, "RAM section inside "
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
    LoadContext ctx = {.map = map, .main_f = f};
    bool ok = load_header(f, errp);

    for (int i = 0; i < nr_entries; i++) {
        entries[i].loaded = entries[i].ended = false;
    }
    if (ok) {
        ok = load_main(f, &ctx, errp);
    }
    for (int i = 0; i < nr_entries; i++) {
        if (entries[i].ops->load_cleanup) {
            entries[i].ops->load_cleanup(entries[i].opaque);
        }
    }
    return ok;
}
