/*
 * postcopy-preempt: requested pages travel on a second connection of
 * their own, so that a vCPU's page never waits behind the background push
 * queued on the main stream. The stream on it: RAM page records as in the
 * "ram" section (be64 offset|flags, the block name unless CONTINUE, then
 * one zero byte or the page), each burst ended by an EOS record; the
 * source closes it when post-copy ends.
 */
#ifndef MIGRATION_POSTCOPY_PREEMPT_H
#define MIGRATION_POSTCOPY_PREEMPT_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"
#include "migration/channel.h"

/* Destination: the reader thread ("mig/dst/preempt"). */
typedef struct PreemptReader PreemptReader;

/* Starts reading `chan` (then owned) and placing its pages. */
PreemptReader *preempt_reader_start(MigChannel *chan, GError **errp);
/*
 * The end of post-copy: waits for the source to close the channel (every
 * page on it placed). False with *errp if the channel failed.
 */
bool preempt_reader_finish(PreemptReader *r, GError **errp);
/* Any time: shuts the channel down, joins, frees. NULL is a no-op. */
void preempt_reader_stop(PreemptReader *r);
/* Pages the preempt channels of this process brought (any thread). */
uint64_t preempt_pages_placed(void);

#endif /* MIGRATION_POSTCOPY_PREEMPT_H */
