/*
 * Unit test: the pure part of KVM's dirty ring (accel/kvm/kvm-ring-core.c)
 * over plain memory: what a harvest takes and in which order, where it
 * stops, the fetch index wrapping around the ring, the entries' reset
 * marks, and entries turned into pages of slots. Table-driven; no KVM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "../../accel/kvm/kvm-ring-core.h"

#define RING 8

typedef struct Taken {
    uint32_t n;
    uint32_t slot[4 * RING];
    uint64_t offset[4 * RING];
} Taken;

static void take(uint32_t slot, uint64_t offset, void *opaque)
{
    Taken *t = opaque;

    t->slot[t->n] = slot;
    t->offset[t->n] = offset;
    t->n++;
}

/* KVM's side: publishes entry number `idx` (free-running). */
static void push(struct kvm_dirty_gfn *g, uint32_t idx, uint32_t slot,
                 uint64_t offset)
{
    struct kvm_dirty_gfn *e = &g[idx % RING];

    e->slot = slot;
    e->offset = offset;
    __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
}

typedef struct RingCase {
    const char *name;
    uint32_t fetch;  /* harvester's index before */
    uint32_t pushed; /* entries KVM published from there */
    uint32_t expect; /* entries the harvest takes */
} RingCase;

static void test_collect(void **state)
{
    static const RingCase cases[] = {
        {"empty", 0, 0, 0},
        {"one", 0, 1, 1},
        {"some", 3, 4, 4},
        {"wraps", 6, 5, 5},
        {"full ring", 5, RING, RING},
        {"index near UINT32_MAX wraps", UINT32_MAX - 2, 6, 6},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const RingCase *c = &cases[i];
        struct kvm_dirty_gfn g[RING] = {0};
        KVMDirtyRing r = {.gfns = g, .size = RING, .fetch = c->fetch};
        Taken t = {0};

        for (uint32_t k = 0; k < c->pushed; k++) {
            push(g, c->fetch + k, k % 3, 100 + k);
        }
        uint32_t n = kvm_dirty_ring_collect(&r, take, &t);
        if (n != c->expect || t.n != c->expect) {
            fail_msg("%s: took %u, expected %u", c->name, n, c->expect);
        }
        assert_int_equal(r.fetch, c->fetch + c->expect);
        for (uint32_t k = 0; k < t.n; k++) {
            /* in publication order, each entry once */
            assert_int_equal(t.slot[k], k % 3);
            assert_int_equal(t.offset[k], 100 + k);
            uint32_t idx = (c->fetch + k) % RING;
            assert_int_equal(g[idx].flags, KVM_DIRTY_GFN_F_RESET);
        }
        /* entries not taken stay as they were */
        for (uint32_t k = c->expect; k < RING; k++) {
            uint32_t idx = (c->fetch + k) % RING;
            assert_false(g[idx].flags & KVM_DIRTY_GFN_F_RESET);
        }
        /* a second harvest finds nothing new */
        assert_int_equal(kvm_dirty_ring_collect(&r, take, &t), 0);
    }
}

/* Harvesting stops at the first unpublished entry, then resumes there. */
static void test_collect_resumes(void **state)
{
    struct kvm_dirty_gfn g[RING] = {0};
    KVMDirtyRing r = {.gfns = g, .size = RING, .fetch = 6};
    Taken t = {0};

    push(g, 6, 0, 1);
    push(g, 7, 0, 2);
    push(g, 9, 0, 4); /* 8 not yet published: 9 must wait */
    assert_int_equal(kvm_dirty_ring_collect(&r, take, &t), 2);
    assert_int_equal(r.fetch, 8);
    /* KVM's reset frees the taken entries; then it publishes 8 */
    g[6 % RING].flags = 0;
    g[7 % RING].flags = 0;
    push(g, 8, 0, 3);
    assert_int_equal(kvm_dirty_ring_collect(&r, take, &t), 2);
    assert_int_equal(r.fetch, 10);
    assert_int_equal(t.n, 4);
    for (uint32_t k = 0; k < 4; k++) {
        assert_int_equal(t.offset[k], k + 1);
    }
}

typedef struct GfnCase {
    uint32_t slot;
    uint64_t offset;
    bool ok;
    uint32_t id;
    uint64_t page;
} GfnCase;

/* Entries to pages: two slots of 10 and 64 pages, like pc.ram's halves. */
static void test_gfn_page(void **state)
{
    static const uint64_t pages[] = {10, 64};
    static const GfnCase cases[] = {
        {0, 0, true, 0, 0},
        {0, 9, true, 0, 9},
        {0, 10, false},
        {1, 63, true, 1, 63},
        {1, 64, false},
        {2, 0, false},              /* no such slot */
        {(1u << 16) | 0, 0, false}, /* another address space (SMM) */
        {0xffff, 0, false},
        {0, UINT64_MAX, false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const GfnCase *c = &cases[i];
        uint32_t id = 99;
        uint64_t page = 99;
        bool ok = kvm_dirty_gfn_page(c->slot, c->offset, pages, 2, &id, &page);
        if (ok != c->ok) {
            fail_msg("slot 0x%x offset %" G_GUINT64_FORMAT ": %d, expected %d",
                     c->slot, c->offset, ok, c->ok);
        }
        if (ok) {
            assert_int_equal(id, c->id);
            assert_int_equal(page, c->page);
        }
    }
}

/* Entries to bitmaps, as the harvester does: each slot's own bit set. */
typedef struct Maps {
    uint64_t pages[2];
    uint64_t bits[2][2];
    uint32_t dropped;
} Maps;

static void mark(uint32_t slot, uint64_t offset, void *opaque)
{
    Maps *m = opaque;
    uint32_t id;
    uint64_t page;

    if (!kvm_dirty_gfn_page(slot, offset, m->pages, 2, &id, &page)) {
        m->dropped++;
        return;
    }
    m->bits[id][page / 64] |= 1ull << (page % 64);
}

static void test_entries_to_bitmap(void **state)
{
    struct kvm_dirty_gfn g[RING] = {0};
    KVMDirtyRing r = {.gfns = g, .size = RING, .fetch = 5};
    Maps m = {.pages = {70, 128}};
    static const struct {
        uint32_t slot;
        uint64_t offset;
    } in[] = {{0, 0}, {0, 69}, {1, 64}, {1, 127}, {0, 70}, {1, 3}, {0, 69}};

    for (uint32_t k = 0; k < G_N_ELEMENTS(in); k++) {
        push(g, 5 + k, in[k].slot, in[k].offset);
    }
    assert_int_equal(kvm_dirty_ring_collect(&r, mark, &m), G_N_ELEMENTS(in));
    assert_int_equal(m.dropped, 1); /* slot 0 offset 70: past its end */
    assert_int_equal(m.bits[0][0], 1ull);
    assert_int_equal(m.bits[0][1], 1ull << 5);
    assert_int_equal(m.bits[1][0], 1ull << 3);
    assert_int_equal(m.bits[1][1], (1ull << 0) | (1ull << 63));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect),
        cmocka_unit_test(test_collect_resumes),
        cmocka_unit_test(test_gfn_page),
        cmocka_unit_test(test_entries_to_bitmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
