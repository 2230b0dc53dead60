/*
 * gwmock: a minimal KVM runner that boots a guest payload the way godwit
 * does (Multiboot v1, 32-bit flat protected mode) and implements godwit's
 * hypercall port (include/godwit/hypercall-abi.h), so that the payloads'
 * godwit paths can be tested before godwit exists. It is a test tool for
 * guest/ only: no devices besides COM1 output and the hypercall port, no
 * interrupts, no real migration.
 *
 * A "migration" is simulated by stopping every vCPU, saving its TSC,
 * sleeping --pause-ms, restoring the TSC (so the guest sees wall time pass
 * without TSC time, as after a real switchover) and incrementing the
 * generation. --request-at bumps the request counter (x-guest-request).
 * --corrupt GPA flips a byte at GPA during each simulated migration.
 * --dirty T,W prints the pages dirtied (KVM dirty log) in [T, T+W) seconds.
 * --dump GPA,LEN,FILE writes guest memory to FILE at the end.
 *
 * Build: ninja -C build guest/gwmock (not built by default), or
 *        cc -O2 -pthread -I include -o gwmock guest/tools/gwmock.c
 * Usage: gwmock [-m MiB] [-smp N] [-append STR] [-t SECONDS]
 *               [--migrate-at S]... [--pause-ms MS] [--request-at S]...
 *               [--corrupt GPA] [--dirty T,W] [--dump GPA,LEN,FILE]
 *               KERNEL.elf
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <godwit/hypercall-abi.h>

#define MAX_VCPUS 8
#define MAX_EVENTS 128
#define LOW_MAX (3ull << 30)
#define HIGH_BASE (4ull << 30)
#define MBI_ADDR 0x9000
#define CMDLINE_ADDR 0x9800
#define MMAP_ADDR 0xa000
#define LOADER_ADDR 0xa800

static int kvm_fd, vm_fd;
static uint8_t *ram;
static uint64_t ram_size, low_size, high_size;
static int nvcpus = 1;
static uint64_t tsc_khz;
static struct kvm_cpuid2 *cpuid;

typedef struct Vcpu {
    int index, fd;
    struct kvm_run *run;
    pthread_t thread;
    struct kvm_sregs sregs; /* initial (APs) */
    struct kvm_regs regs;
    uint64_t saved_tsc;
} Vcpu;
static Vcpu vcpus[MAX_VCPUS];
static int run_size;

static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stop_req, nstopped, nrunning;
static uint64_t gen, reqs;
static bool aps_started;
static pthread_mutex_t out_lk = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *msg)
{
    perror(msg);
    exit(2);
}

static void *gpa(uint64_t a, uint64_t len)
{
    if (a + len <= low_size) {
        return ram + a;
    }
    if (a >= HIGH_BASE && a + len <= HIGH_BASE + high_size) {
        return ram + low_size + (a - HIGH_BASE);
    }
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static double mono(void)
{
    static struct timespec t0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!t0.tv_sec) {
        t0 = ts;
    }
    return (ts.tv_sec - t0.tv_sec) + (ts.tv_nsec - t0.tv_nsec) / 1e9;
}

static void out(const void *p, size_t n)
{
    pthread_mutex_lock(&out_lk);
    fwrite(p, 1, n, stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lk);
}

static void set_tsc_msr(Vcpu *v, uint64_t tsc);

/* One-MSR kvm_msrs, without a variable-sized struct inside a struct. */
typedef union MsrBuf {
    struct kvm_msrs h;
    uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
} MsrBuf;

static uint64_t get_tsc(Vcpu *v)
{
    MsrBuf m = {.h.nmsrs = 1};

    m.h.entries[0].index = 0x10;
    if (ioctl(v->fd, KVM_GET_MSRS, &m) != 1) {
        die("KVM_GET_MSRS tsc");
    }
    return m.h.entries[0].data;
}

/*
 * A host write of IA32_TSC close to the current value is taken by KVM as a
 * synchronization and ignored, so move the TSC back through the vCPU's TSC
 * offset attribute when there is one.
 */
static void set_tsc(Vcpu *v, uint64_t tsc)
{
    uint64_t offset;
    struct kvm_device_attr attr = {
        .group = KVM_VCPU_TSC_CTRL,
        .attr = KVM_VCPU_TSC_OFFSET,
        .addr = (uintptr_t)&offset,
    };

    if (ioctl(v->fd, KVM_GET_DEVICE_ATTR, &attr) == 0) {
        offset -= get_tsc(v) - tsc;
        if (ioctl(v->fd, KVM_SET_DEVICE_ATTR, &attr) < 0) {
            die("KVM_SET_DEVICE_ATTR tsc offset");
        }
        return;
    }
    set_tsc_msr(v, tsc);
}

static void set_tsc_msr(Vcpu *v, uint64_t tsc)
{
    MsrBuf m = {.h.nmsrs = 1};

    m.h.entries[0].index = 0x10;
    m.h.entries[0].data = tsc;
    if (ioctl(v->fd, KVM_SET_MSRS, &m) != 1) {
        die("KVM_SET_MSRS tsc");
    }
}

/* vCPU thread: stop here while the controller "migrates". Holds lk. */
static void check_stop_locked(Vcpu *v)
{
    if (!stop_req) {
        return;
    }
    v->saved_tsc = get_tsc(v);
    nstopped++;
    pthread_cond_broadcast(&cv);
    while (stop_req) {
        pthread_cond_wait(&cv, &lk);
    }
    nstopped--;
    set_tsc(v, v->saved_tsc);
}

static void *vcpu_thread(void *arg);

static void start_vcpu(Vcpu *v)
{
    pthread_mutex_lock(&lk);
    nrunning++;
    pthread_mutex_unlock(&lk);
    if (pthread_create(&v->thread, NULL, vcpu_thread, v)) {
        die("pthread_create");
    }
}

/* Wait on cv until cond() or a stop request; false on stop (EINTR). */
static bool wait_until(uint64_t deadline_ns, bool (*cond)(void *), void *arg)
{
    struct timespec ts;
    bool ok = true;

    pthread_mutex_lock(&lk);
    for (;;) {
        if (stop_req) {
            ok = false;
            break;
        }
        if (cond && cond(arg)) {
            break;
        }
        if (deadline_ns && now_ns() >= deadline_ns) {
            break;
        }
        if (deadline_ns) {
            ts.tv_sec = deadline_ns / 1000000000ull;
            ts.tv_nsec = deadline_ns % 1000000000ull;
            pthread_cond_timedwait(&cv, &lk, &ts);
        } else {
            pthread_cond_wait(&cv, &lk);
        }
    }
    pthread_mutex_unlock(&lk);
    return ok;
}

static bool park_cond(void *arg)
{
    GwHcRequest *r = arg;
    return gen != r->arg[0] || reqs != r->arg[1];
}

static void clock_rets(GwHcRequest *r)
{
    pthread_mutex_lock(&lk);
    r->ret[0] = now_ns();
    r->ret[1] = gen;
    r->ret[2] = reqs;
    pthread_mutex_unlock(&lk);
}

static void hypercall(Vcpu *v, uint32_t addr)
{
    GwHcRequest *r = gpa(addr, sizeof(*r));
    static const char *kinds[] = {"?", "verify", "perf", "pause", "progress"};

    if (!r || addr % 8) {
        fprintf(stderr, "gwmock: bad request address 0x%x\n", addr);
        return;
    }
    r->status = GW_HC_OK;
    switch (r->op) {
    case GW_HC_PROBE:
        r->ret[0] = GW_HC_VERSION;
        break;
    case GW_HC_PUTS: {
        void *p = gpa(r->arg[0], r->arg[1]);
        if (!p || r->arg[1] > GW_HC_PUTS_MAX) {
            r->status = GW_HC_EINVAL;
            break;
        }
        out(p, r->arg[1]);
        break;
    }
    case GW_HC_INFO:
        r->ret[0] = tsc_khz;
        r->ret[1] = nvcpus;
        r->ret[2] = v->index;
        r->ret[3] = ram_size;
        break;
    case GW_HC_CLOCK:
        clock_rets(r);
        break;
    case GW_HC_PARK:
        if (!wait_until(0, park_cond, r)) {
            r->status = GW_HC_EINTR;
        }
        clock_rets(r);
        break;
    case GW_HC_SLEEP:
        if (!wait_until(now_ns() + r->arg[0], NULL, NULL)) {
            r->status = GW_HC_EINTR;
        }
        break;
    case GW_HC_START_APS: {
        struct kvm_sregs sregs;
        if (aps_started) {
            r->status = GW_HC_EINVAL;
            break;
        }
        aps_started = true;
        if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
            die("KVM_GET_SREGS");
        }
        for (int i = 1; i < nvcpus; i++) {
            Vcpu *a = &vcpus[i];
            a->sregs = sregs;
            memset(&a->regs, 0, sizeof(a->regs));
            a->regs.rip = r->arg[0];
            a->regs.rsp = r->arg[1] - (uint64_t)(i - 1) * r->arg[2];
            a->regs.rdi = i;
            a->regs.rsi = r->arg[3];
            a->regs.rflags = 0x3002;
            start_vcpu(a);
        }
        r->ret[0] = nvcpus - 1;
        break;
    }
    case GW_HC_REPORT:
        fprintf(stderr, "gwmock: %.3f report %s vcpu=%d %llu %llu %llu\n",
                mono(), r->arg[0] < 5 ? kinds[r->arg[0]] : "?", v->index,
                (unsigned long long)r->arg[1], (unsigned long long)r->arg[2],
                (unsigned long long)r->arg[3]);
        break;
    case GW_HC_EXIT:
        fprintf(stderr, "gwmock: guest exit %llu\n",
                (unsigned long long)r->arg[0]);
        exit((int)r->arg[0]);
    default:
        r->status = GW_HC_ENOSYS;
        break;
    }
}

static void io_exit(Vcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    uint16_t port = run->io.port;

    if (run->io.direction == KVM_EXIT_IO_OUT) {
        if (port == 0x3f8) {
            out(data, run->io.size * run->io.count);
        } else if (port == GW_HC_PORT && run->io.size == 4) {
            uint32_t addr;
            memcpy(&addr, data, 4);
            hypercall(v, addr);
        }
        return;
    }
    if (port == GW_HC_PORT && run->io.size == 4) {
        uint32_t magic = GW_HC_MAGIC;
        memcpy(data, &magic, 4);
    } else if (port == 0x3fd) {
        *data = 0x60;
    } else {
        memset(data, 0xff, run->io.size);
    }
}

static void dump(Vcpu *v, const char *why)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    ioctl(v->fd, KVM_GET_REGS, &regs);
    ioctl(v->fd, KVM_GET_SREGS, &sregs);
    fprintf(stderr,
            "gwmock: vcpu %d %s: rip=0x%llx rsp=0x%llx cs=0x%x cr0=0x%llx "
            "cr3=0x%llx cr4=0x%llx efer=0x%llx\n",
            v->index, why, regs.rip, regs.rsp, sregs.cs.selector, sregs.cr0,
            sregs.cr3, sregs.cr4, sregs.efer);
    exit(3);
}

static void sig_kick(int s)
{
    (void)s;
}

static void *vcpu_thread(void *arg)
{
    Vcpu *v = arg;
    sigset_t block, none;
    union {
        struct kvm_signal_mask m;
        uint8_t bytes[sizeof(struct kvm_signal_mask) + 8];
    } km = {.m.len = 8};

    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &none);
    sigdelset(&none, SIGUSR1);
    memcpy(km.m.sigset, &none, 8);
    if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &km) < 0) {
        die("KVM_SET_SIGNAL_MASK");
    }
    if (ioctl(v->fd, KVM_SET_SREGS, &v->sregs) < 0 ||
        ioctl(v->fd, KVM_SET_REGS, &v->regs) < 0) {
        die("KVM_SET_(S)REGS");
    }
    for (;;) {
        pthread_mutex_lock(&lk);
        check_stop_locked(v);
        pthread_mutex_unlock(&lk);
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR) {
                /* The kick stays pending (blocked) after KVM_RUN: eat it. */
                struct timespec zero = {0, 0};
                while (sigtimedwait(&block, NULL, &zero) > 0) {
                }
                continue;
            }
            die("KVM_RUN");
        }
        switch (v->run->exit_reason) {
        case KVM_EXIT_IO:
            io_exit(v);
            break;
        case KVM_EXIT_HLT:
            /* idle payload: halted in ring 0 with IF=0 forever */
            wait_until(0, NULL, NULL);
            break;
        case KVM_EXIT_MMIO:
            if (!v->run->mmio.is_write) {
                memset(v->run->mmio.data, 0xff, 8);
            }
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_SHUTDOWN:
            dump(v, "shutdown (triple fault)");
            break;
        default: {
            char why[64];
            snprintf(why, sizeof(why), "exit reason %u", v->run->exit_reason);
            dump(v, why);
        }
        }
    }
    return NULL;
}

static void create_vcpu(int i)
{
    Vcpu *v = &vcpus[i];

    v->index = i;
    v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, i);
    if (v->fd < 0) {
        die("KVM_CREATE_VCPU");
    }
    v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        die("mmap run");
    }
    /* APIC ID in CPUID.1:EBX[31:24] */
    for (unsigned k = 0; k < cpuid->nent; k++) {
        if (cpuid->entries[k].function == 1) {
            cpuid->entries[k].ebx =
                (cpuid->entries[k].ebx & 0x00ffffff) | (uint32_t)i << 24;
        }
    }
    if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
        die("KVM_SET_CPUID2");
    }
}

static uint64_t load_elf(const char *path)
{
    FILE *f = fopen(path, "rb");
    Elf32_Ehdr eh;

    if (!f || fread(&eh, sizeof(eh), 1, f) != 1) {
        die(path);
    }
    if (memcmp(eh.e_ident, ELFMAG, 4) || eh.e_ident[EI_CLASS] != ELFCLASS32) {
        fprintf(stderr, "gwmock: %s: not ELF32\n", path);
        exit(2);
    }
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf32_Phdr ph;
        void *dst;
        fseek(f, eh.e_phoff + i * eh.e_phentsize, SEEK_SET);
        if (fread(&ph, sizeof(ph), 1, f) != 1) {
            die("phdr");
        }
        if (ph.p_type != PT_LOAD) {
            continue;
        }
        dst = gpa(ph.p_paddr, ph.p_memsz);
        if (!dst) {
            fprintf(stderr, "gwmock: segment outside RAM\n");
            exit(2);
        }
        memset(dst, 0, ph.p_memsz);
        fseek(f, ph.p_offset, SEEK_SET);
        if (ph.p_filesz && fread(dst, ph.p_filesz, 1, f) != 1) {
            die("segment");
        }
    }
    fclose(f);
    return eh.e_entry;
}

static void build_mbi(const char *kernel, const char *append)
{
    uint32_t *mbi = gpa(MBI_ADDR, 120);
    uint8_t *mm = gpa(MMAP_ADDR, 256);
    uint32_t len = 0;
    struct {
        uint64_t a, l;
        uint32_t t;
    } ents[] = {
        {0, 0x9fc00, 1},
        {0xf0000, 0x10000, 2},
        {0x100000, low_size - 0x100000, 1},
        {HIGH_BASE, high_size, 1},
    };

    snprintf(gpa(CMDLINE_ADDR, 2048), 2048, "%s %s", kernel, append);
    strcpy(gpa(LOADER_ADDR, 16), "gwmock");
    for (unsigned i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
        uint32_t size = 20;
        if (!ents[i].l) {
            continue;
        }
        memcpy(mm + len, &size, 4);
        memcpy(mm + len + 4, &ents[i].a, 8);
        memcpy(mm + len + 12, &ents[i].l, 8);
        memcpy(mm + len + 20, &ents[i].t, 4);
        len += 24;
    }
    memset(mbi, 0, 120);
    mbi[0] = 1 | 4 | 64 | 512; /* mem, cmdline, mmap, loader name */
    mbi[1] = 639;
    mbi[2] = (uint32_t)((low_size - 0x100000) / 1024);
    mbi[4] = CMDLINE_ADDR;
    mbi[11] = len;
    mbi[12] = MMAP_ADDR;
    mbi[16] = LOADER_ADDR;
}

static void setup_bsp(uint64_t entry)
{
    Vcpu *v = &vcpus[0];
    struct kvm_segment code = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = 0x10,
        .type = 0xb,
        .present = 1,
        .dpl = 0,
        .db = 1,
        .s = 1,
        .l = 0,
        .g = 1,
    };
    struct kvm_segment data = code;

    if (ioctl(v->fd, KVM_GET_SREGS, &v->sregs) < 0) {
        die("KVM_GET_SREGS");
    }
    data.type = 0x3;
    data.selector = 0x18;
    v->sregs.cs = code;
    v->sregs.ds = v->sregs.es = v->sregs.fs = v->sregs.gs = v->sregs.ss = data;
    v->sregs.cr0 = 0x11;
    v->sregs.cr4 = 0;
    v->sregs.efer = 0;
    memset(&v->regs, 0, sizeof(v->regs));
    v->regs.rip = entry;
    v->regs.rax = 0x2badb002;
    v->regs.rbx = MBI_ADDR;
    v->regs.rflags = 2;
}

static void migrate(uint64_t pause_ms, int64_t corrupt)
{
    double t = mono();

    pthread_mutex_lock(&lk);
    stop_req = 1;
    pthread_cond_broadcast(&cv);
    for (int i = 0; i < nvcpus; i++) {
        if (vcpus[i].thread) {
            pthread_kill(vcpus[i].thread, SIGUSR1);
        }
    }
    while (nstopped < nrunning) {
        pthread_cond_wait(&cv, &lk);
    }
    pthread_mutex_unlock(&lk);
    usleep(pause_ms * 1000);
    if (corrupt >= 0) {
        uint8_t *p = gpa(corrupt, 1);
        if (p) {
            *p ^= 0x01;
        }
    }
    pthread_mutex_lock(&lk);
    gen++;
    stop_req = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lk);
    fprintf(stderr, "gwmock: %.3f migrated: gen=%llu pause=%llums (%.3f ms)\n",
            t, (unsigned long long)gen, (unsigned long long)pause_ms,
            (mono() - t) * 1e3);
}

static void request(void)
{
    pthread_mutex_lock(&lk);
    reqs++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lk);
    fprintf(stderr, "gwmock: %.3f request %llu\n", mono(),
            (unsigned long long)reqs);
}

static void dirty_log(int slot, uint64_t base, uint64_t size, bool print)
{
    uint64_t npages = size / 4096;
    uint64_t *bm = calloc((npages + 63) / 64, 8);
    struct kvm_dirty_log d = {.slot = slot, .dirty_bitmap = bm};
    uint64_t start = 0, n = 0;

    if (ioctl(vm_fd, KVM_GET_DIRTY_LOG, &d) < 0) {
        die("KVM_GET_DIRTY_LOG");
    }
    for (uint64_t i = 0; print && i <= npages; i++) {
        bool dirty = i < npages && (bm[i / 64] >> (i % 64) & 1);
        if (dirty && !n) {
            start = i;
        }
        if (dirty) {
            n++;
        } else if (n) {
            fprintf(stderr, "gwmock: dirty 0x%llx-0x%llx (%llu pages)\n",
                    (unsigned long long)(base + start * 4096),
                    (unsigned long long)(base + (start + n) * 4096),
                    (unsigned long long)n);
            n = 0;
        }
    }
    free(bm);
}

static void add_slot(int slot, uint64_t gpa_base, uint64_t size, void *host,
                     bool log)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
        .guest_phys_addr = gpa_base,
        .memory_size = size,
        .userspace_addr = (uintptr_t)host,
    };
    if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        die("KVM_SET_USER_MEMORY_REGION");
    }
}

typedef struct Event {
    double at;
    int kind; /* 0 migrate, 1 request, 2 dirty start, 3 dirty end */
} Event;

static int cmp_event(const void *a, const void *b)
{
    const Event *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

int main(int argc, char **argv)
{
    uint64_t mib = 256, pause_ms = 100;
    int64_t corrupt = -1;
    double timeout = 10, dirty_t = -1, dirty_w = 1;
    const char *append = "", *kernel = NULL;
    unsigned long long dump_gpa = 0, dump_len = 0;
    char dump_file[256] = "";
    Event ev[MAX_EVENTS];
    int nev = 0;
    struct sigaction sa = {.sa_handler = sig_kick};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "-m")) {
            mib = strtoull(v, NULL, 0), i++;
        } else if (!strcmp(a, "-smp")) {
            nvcpus = atoi(v), i++;
        } else if (!strcmp(a, "-append")) {
            append = v, i++;
        } else if (!strcmp(a, "-t")) {
            timeout = atof(v), i++;
        } else if (!strcmp(a, "--migrate-at") && nev < MAX_EVENTS) {
            ev[nev++] = (Event){atof(v), 0}, i++;
        } else if (!strcmp(a, "--request-at") && nev < MAX_EVENTS) {
            ev[nev++] = (Event){atof(v), 1}, i++;
        } else if (!strcmp(a, "--pause-ms")) {
            pause_ms = strtoull(v, NULL, 0), i++;
        } else if (!strcmp(a, "--corrupt")) {
            corrupt = strtoll(v, NULL, 0), i++;
        } else if (!strcmp(a, "--dump")) {
            sscanf(v, "%lli,%lli,%255s", &dump_gpa, &dump_len, dump_file), i++;
        } else if (!strcmp(a, "--dirty")) {
            sscanf(v, "%lf,%lf", &dirty_t, &dirty_w), i++;
        } else {
            kernel = a;
        }
    }
    if (!kernel || nvcpus < 1 || nvcpus > MAX_VCPUS) {
        fprintf(stderr, "usage: see the header of gwmock.c\n");
        return 2;
    }
    if (dirty_t >= 0 && nev + 2 <= MAX_EVENTS) {
        ev[nev++] = (Event){dirty_t, 2};
        ev[nev++] = (Event){dirty_t + dirty_w, 3};
    }
    qsort(ev, nev, sizeof(ev[0]), cmp_event);
    sigaction(SIGUSR1, &sa, NULL);

    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0) {
        die("/dev/kvm");
    }
    vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm_fd < 0) {
        die("KVM_CREATE_VM");
    }
    ioctl(vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
    run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    ram_size = mib << 20;
    low_size = ram_size < LOW_MAX ? ram_size : LOW_MAX;
    high_size = ram_size - low_size;
    ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED) {
        die("mmap ram");
    }
    add_slot(0, 0, low_size, ram, true);
    if (high_size) {
        add_slot(1, HIGH_BASE, high_size, ram + low_size, true);
    }
    cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(cpuid->entries[0]));
    cpuid->nent = 256;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
        die("KVM_GET_SUPPORTED_CPUID");
    }
    for (int i = 0; i < nvcpus; i++) {
        create_vcpu(i);
    }
    tsc_khz = ioctl(vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
    build_mbi(kernel, append);
    setup_bsp(load_elf(kernel));
    mono();
    start_vcpu(&vcpus[0]);

    for (int i = 0; i < nev; i++) {
        double d = ev[i].at - mono();
        if (d > 0) {
            usleep((useconds_t)(d * 1e6));
        }
        switch (ev[i].kind) {
        case 0:
            migrate(pause_ms, corrupt);
            break;
        case 1:
            request();
            break;
        case 2:
            fprintf(stderr, "gwmock: %.3f dirty log start\n", mono());
            dirty_log(0, 0, low_size, false);
            break;
        case 3:
            fprintf(stderr, "gwmock: %.3f dirty log end\n", mono());
            dirty_log(0, 0, low_size, true);
            break;
        }
    }
    if (timeout > mono()) {
        usleep((useconds_t)((timeout - mono()) * 1e6));
    }
    fprintf(stderr, "gwmock: timeout\n");
    if (dump_file[0]) {
        FILE *f = fopen(dump_file, "wb");
        void *p = gpa(dump_gpa, dump_len);
        if (!f || !p || fwrite(p, dump_len, 1, f) != 1) {
            die("dump");
        }
        fclose(f);
    }
    return 0;
}
