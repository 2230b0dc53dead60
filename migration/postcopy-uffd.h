/*
 * Post-copy's userfaultfd, internal to migration/: the pieces of
 * postcopy-uffd.c that postcopy_ram_new() builds on. The probe itself,
 * postcopy_ram_probe() and postcopy_ram_supported(), is declared in
 * postcopy-ram.h. Any thread may call these; none keeps state.
 */
#ifndef MIGRATION_POSTCOPY_UFFD_H
#define MIGRATION_POSTCOPY_UFFD_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "postcopy-ram.h"

/* False, with the reason, unless host pages are POSTCOPY_RAM_PAGE_SIZE. */
bool postcopy_check_page_size(GError **errp);

/*
 * A userfaultfd ready for post-copy, with UFFD_FEATURE_THREAD_ID when
 * offered (caps says which, and whether kernel faults are caught); -1 on
 * failure. The caller owns the descriptor.
 */
int postcopy_uffd_new(PostcopyRamCaps *caps, GError **errp);

/*
 * Registers [start, start + len) for missing faults. On false the caller
 * closes the descriptor, which unregisters what was registered.
 */
bool postcopy_uffd_register(int uffd, uintptr_t start, uint64_t len,
                            GError **errp);

#endif /* MIGRATION_POSTCOPY_UFFD_H */
