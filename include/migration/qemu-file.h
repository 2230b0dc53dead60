/*
 * QEMUFile: the buffered migration stream over a MigChannel, with a sticky
 * error (write many fields, check once).
 *
 * Output: small fields are copied into an internal buffer; page data can
 * be queued by reference (qemu_put_buffer_async) so that guest pages go to
 * writev() straight from guest RAM, never through a staging copy. Data
 * queued by reference is read at flush time.
 *
 * Input: reads through an internal buffer; a short stream (end of file
 * before a field is complete) sets the error "unexpected end of migration
 * stream" and every later read returns zeros, so a loader can check once
 * per record.
 *
 * All values big-endian, as QEMU writes them. A QEMUFile belongs to one
 * thread at a time; only qemu_file_shutdown() may be called from another.
 */
#ifndef MIGRATION_QEMU_FILE_H
#define MIGRATION_QEMU_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "godwit/error.h"

typedef struct QEMUFile QEMUFile;
typedef struct MigChannel MigChannel;

/* The file takes over `chan` (closed by qemu_fclose). */
QEMUFile *qemu_file_new_output(MigChannel *chan);
QEMUFile *qemu_file_new_input(MigChannel *chan);

/*
 * Flushes (output) and closes the channel. Returns false with *errp set if
 * the stream had an error, or the flush or close failed (e.g. an exec
 * command that exited non-zero).
 */
bool qemu_fclose(QEMUFile *f, GError **errp);

void qemu_put_byte(QEMUFile *f, uint8_t v);
void qemu_put_be16(QEMUFile *f, uint16_t v);
void qemu_put_be32(QEMUFile *f, uint32_t v);
void qemu_put_be64(QEMUFile *f, uint64_t v);
void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len);
/*
 * Queues `len` bytes at `buf` by reference: `buf` must stay mapped until
 * the next flush; its contents are read then.
 */
void qemu_put_buffer_async(QEMUFile *f, const void *buf, size_t len);
/* Length-prefixed string: u8 length then bytes (at most 255). */
void qemu_put_counted_string(QEMUFile *f, const char *s);
/* Writes everything queued; blocks (interruptibly) until done. */
void qemu_fflush(QEMUFile *f);
/*
 * Hands everything queued to the channel without waiting for a channel
 * with asynchronous writes (file: through io_uring) to finish them; the
 * same as qemu_fflush on every other channel. For the precopy loop: the
 * kernel writes while the next pages are scanned. qemu_fflush and
 * qemu_fclose wait (and report a write error).
 */
void qemu_file_submit(QEMUFile *f);

uint8_t qemu_get_byte(QEMUFile *f);
uint16_t qemu_get_be16(QEMUFile *f);
uint32_t qemu_get_be32(QEMUFile *f);
uint64_t qemu_get_be64(QEMUFile *f);
/* Reads exactly len bytes (zeros after an error). */
void qemu_get_buffer(QEMUFile *f, void *buf, size_t len);
/*
 * Reading straight into the final place (the RAM loader's page payloads,
 * migration/ram-load-direct.c), for input files over sockets
 * (qemu_file_direct_ok; other transports keep the buffered path).
 * qemu_get_buffered: takes up to `len` bytes that are already buffered,
 * never reads; returns how many (0 once the file has an error).
 * qemu_get_direct: with nothing buffered, waits for the channel and reads
 * once with readv into `iov`; returns the bytes read, at least 1, or 0 with
 * the sticky error set (the end of the stream counts as unexpected: the
 * caller is inside a record).
 * qemu_unget_direct: gives bytes that qemu_get_direct read beyond what the
 * caller could take back to the input, in stream order (called right after
 * qemu_get_direct, possibly several times; at most 128 KiB in all).
 */
size_t qemu_get_buffered(QEMUFile *f, void *buf, size_t len);
bool qemu_file_direct_ok(QEMUFile *f);
size_t qemu_get_direct(QEMUFile *f, const struct iovec *iov, int iovcnt);
void qemu_unget_direct(QEMUFile *f, const void *buf, size_t len);
/* Reads a counted string into buf (NUL-terminated, buf >= 256 bytes). */
void qemu_get_counted_string(QEMUFile *f, char *buf);
/* Whether the input has reached a clean end of stream (no bytes left). */
bool qemu_file_at_eof(QEMUFile *f);

/*
 * Sticky error: 0 or -errno. The first error wins; its message is kept.
 * qemu_file_set_error is for loaders that find bad data (-EINVAL) and for
 * the migration code (e.g. -ECANCELED).
 */
int qemu_file_get_error(QEMUFile *f);
const char *qemu_file_error_message(QEMUFile *f);
void qemu_file_set_error(QEMUFile *f, int err, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Copies the sticky error into *errp (false if there is one). */
bool qemu_file_check(QEMUFile *f, GError **errp);

/* Any thread: makes blocked and future I/O fail (cancel). */
void qemu_file_shutdown(QEMUFile *f);

/* Bytes written to the channel (output) or consumed (input) so far. */
uint64_t qemu_file_transferred(QEMUFile *f);
/* Output: bytes queued but not flushed yet. */
uint64_t qemu_file_pending(QEMUFile *f);

MigChannel *qemu_file_channel(QEMUFile *f);

#endif /* MIGRATION_QEMU_FILE_H */
