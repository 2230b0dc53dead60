/*
 * Machine set-up: the PC-like RAM layout, kernel loading, the accelerator
 * and its vCPU threads; and tear-down in the reverse order.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "godwit/machine.h"
#include "godwit/multiboot.h"

Machine *current_machine;

/* QEMU's pc machine: all RAM below 4 GiB up to 3.5 GiB, else 3 GiB. */
#define PC_LOWMEM_LIMIT 0xe0000000ull
#define PC_LOWMEM_SPLIT 0xc0000000ull

static void machine_layout(Machine *m)
{
    m->below_4g =
        m->ram_size >= PC_LOWMEM_LIMIT ? PC_LOWMEM_SPLIT : m->ram_size;
    m->above_4g = m->ram_size - m->below_4g;
    m->slices[0] = (GuestRamSlice){0, m->below_4g, m->ram, 0};
    m->nr_slices = 1;
    if (m->above_4g) {
        m->slices[1] = (GuestRamSlice){GW_4G, m->above_4g, m->ram, m->below_4g};
        m->nr_slices = 2;
    }
}

static bool machine_load_kernel(Machine *m, GError **errp)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;
    MultibootTarget t = {
        .host = m->ram->host,
        .below_4g = m->below_4g,
        .above_4g = m->above_4g,
    };
    MultibootInfo info;

    if (!g_file_get_contents(m->kernel, &data, &len, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "could not load kernel '%s': %s", m->kernel, err->message);
        return false;
    }
    if (!multiboot_load((const uint8_t *)data, len, m->kernel, m->append, &t,
                        &info, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "kernel '%s': %s",
                    m->kernel, err->message);
        return false;
    }
    m->boot_entry = info.entry;
    m->boot_mbi = info.mbi;
    return true;
}

/*
 * Creates the VM with the first accelerator of `list` ("kvm:tcg"; NULL:
 * the default, kvm then tcg) whose init succeeds. Says on stderr why an
 * accelerator named on the command line was passed over; by default the
 * choice goes in m->accel_note, for main() to print once it runs.
 */
static bool machine_init_accel(Machine *m, const char *list, GError **errp)
{
    g_auto(GStrv) names = g_strsplit(list ? list : "kvm:tcg", ":", -1);
    g_autoptr(GString) passed = g_string_new(NULL);

    for (int i = 0; names[i]; i++) {
        g_autoptr(GError) err = NULL;

        m->accel = accel_find(names[i]);
        if (!m->accel) {
            g_set_error(&err, GW_ERROR, GW_ERROR_GENERIC,
                        "accelerator '%s' is not available", names[i]);
        } else if (m->accel->init(m, &err)) {
            if (!list) {
                m->accel_note =
                    g_strdup_printf("using the %s accelerator%s%s%s", names[i],
                                    passed->len ? " (" : "", passed->str,
                                    passed->len ? ")" : "");
            }
            return true;
        }
        m->accel = NULL;
        if (!names[i + 1]) {
            g_propagate_error(errp, g_steal_pointer(&err));
            return false;
        }
        if (list) {
            fprintf(stderr, "godwit: -accel %s: %s; falling back to %s\n",
                    names[i], err->message, names[i + 1]);
        } else {
            g_string_append_printf(passed, "%s%s", passed->len ? "; " : "",
                                   err->message);
        }
    }
    g_assert_not_reached();
}

Machine *machine_new(const MachineConfig *cfg, GError **errp)
{
    Machine *m = g_new0(Machine, 1);

    m->name = g_strdup(cfg->name);
    m->kernel = g_strdup(cfg->kernel);
    m->append = g_strdup(cfg->append);
    m->ram_size = cfg->ram_size;
    m->smp = cfg->smp > 0 ? cfg->smp : 1;
    m->dirty_ring_size = cfg->dirty_ring_size;
    current_machine = m;

    m->ram = ram_block_new("pc.ram", m->ram_size, errp);
    if (!m->ram) {
        goto fail;
    }
    machine_layout(m);
    m->mem_prealloc = cfg->mem_prealloc;
    if (m->mem_prealloc &&
        !ram_block_prealloc(m->ram, g_get_num_processors(), errp)) {
        goto fail;
    }
    /* Without a kernel (a migration destination) the boot vCPU's state is
     * whatever the stream brings. */
    if (m->kernel && !machine_load_kernel(m, errp)) {
        goto fail;
    }
    m->cpus = cpus_new(m, m->smp);
    if (!machine_init_accel(m, cfg->accel, errp)) {
        goto fail;
    }
    m->tsc_khz = m->accel->tsc_khz(m);
    if (!cpus_start_threads(m, m->accel->vcpu_thread, errp)) {
        goto fail;
    }
    return m;

fail:
    machine_free(m);
    return NULL;
}

void machine_free(Machine *m)
{
    if (!m) {
        return;
    }
    if (m->cpus) {
        cpus_join_threads(m);
        if (m->accel_state) {
            m->accel->cleanup(m);
        }
        cpus_free(m->cpus, m->smp);
    }
    ram_block_free(m->ram);
    g_free(m->name);
    g_free(m->kernel);
    g_free(m->append);
    g_free(m->accel_note);
    if (current_machine == m) {
        current_machine = NULL;
    }
    g_free(m);
}

void *machine_gpa_to_host(Machine *m, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < m->nr_slices; i++) {
        const GuestRamSlice *s = &m->slices[i];
        if (gpa >= s->gpa && gpa - s->gpa <= s->size &&
            len <= s->size - (gpa - s->gpa)) {
            return s->block->host + s->offset + (gpa - s->gpa);
        }
    }
    return NULL;
}

void machine_mark_dirty(Machine *m, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < m->nr_slices; i++) {
        const GuestRamSlice *s = &m->slices[i];
        if (gpa >= s->gpa && gpa - s->gpa < s->size) {
            uint64_t off = gpa - s->gpa;
            ram_block_set_dirty(s->block, s->offset + off,
                                MIN(len, s->size - off));
        }
    }
}

typedef struct StateTask {
    GwCpuState *st;
    bool ok;
    GError *err;
} StateTask;

static void save_task(CPUState *cpu, void *opaque)
{
    StateTask *t = opaque;
    t->ok = cpu->machine->accel->cpu_state_save(cpu, t->st, &t->err);
}

static void load_task(CPUState *cpu, void *opaque)
{
    StateTask *t = opaque;
    t->ok = cpu->machine->accel->cpu_state_load(cpu, t->st, &t->err);
}

bool machine_cpu_state_save(Machine *m, int index, GwCpuState *st,
                            GError **errp)
{
    StateTask t = {.st = st};

    run_on_cpu(m->cpus[index], save_task, &t);
    if (!t.ok) {
        g_propagate_prefixed_error(errp, t.err, "vCPU %d: ", index);
    }
    return t.ok;
}

bool machine_cpu_state_load(Machine *m, int index, const GwCpuState *st,
                            GError **errp)
{
    StateTask t = {.st = (GwCpuState *)st};

    run_on_cpu(m->cpus[index], load_task, &t);
    if (!t.ok) {
        g_propagate_prefixed_error(errp, t.err, "vCPU %d: ", index);
    }
    return t.ok;
}

bool machine_reload_accel(Machine *m, GError **errp)
{
    g_autofree GwCpuState *states = g_new0(GwCpuState, m->smp);

    pause_all_vcpus(m); /* waits for threads that have not parked yet */
    for (int i = 0; i < m->smp; i++) {
        if (!machine_cpu_state_save(m, i, &states[i], errp)) {
            return false;
        }
    }
    cpus_join_threads(m);
    m->accel->cleanup(m);
    if (!m->accel->init(m, errp)) {
        return false;
    }
    if (!cpus_start_threads(m, m->accel->vcpu_thread, errp)) {
        return false;
    }
    for (int i = 0; i < m->smp; i++) {
        if (!machine_cpu_state_load(m, i, &states[i], errp)) {
            return false;
        }
    }
    return true;
}
