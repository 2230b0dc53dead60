/*
 * Output character devices for -serial: file:PATH, stdio, none.
 */
#ifndef GODWIT_CHARDEV_H
#define GODWIT_CHARDEV_H

#include <stddef.h>

#include "godwit/error.h"

typedef struct Chardev Chardev;

/* Opens a backend from a -serial spec. NULL with *errp set on error. */
Chardev *chardev_open(const char *spec, GError **errp);
/* Writes all bytes (thread-safe; a failing backend drops output). */
void chardev_write(Chardev *chr, const void *buf, size_t len);
void chardev_close(Chardev *chr);

#endif /* GODWIT_CHARDEV_H */
