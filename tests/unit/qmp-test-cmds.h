/*
 * Fake QMP commands for the monitor unit tests (see qmp-test-cmds.c).
 */
#ifndef QMP_TEST_CMDS_H
#define QMP_TEST_CMDS_H

#include "monitor/monitor-internal.h"

/* The loop that the "test-quit" command quits. */
extern GMainLoop *quit_loop;

/* Sets version 1.2.3 and registers test-echo, test-fail, test-list, ... */
void qmp_test_register(void);

#endif /* QMP_TEST_CMDS_H */
