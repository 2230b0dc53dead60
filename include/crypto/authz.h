/*
 * Access control objects, as QEMU's: authz-simple (one identity) and
 * authz-list (ordered rules, first match wins, else the default policy).
 * The identity is what TLS proved about the peer: its x509 distinguished
 * name or its PSK username.
 */
#ifndef CRYPTO_AUTHZ_H
#define CRYPTO_AUTHZ_H

#include <stdbool.h>

#include "godwit/error.h"

typedef enum AuthzPolicy {
    AUTHZ_POLICY_DENY,
    AUTHZ_POLICY_ALLOW,
} AuthzPolicy;

typedef enum AuthzFormat {
    AUTHZ_FORMAT_EXACT,
    AUTHZ_FORMAT_GLOB,
} AuthzFormat;

typedef struct AuthzRule {
    char *match;
    AuthzPolicy policy;
    AuthzFormat format;
} AuthzRule;

/* The state of both types: authz-simple is one allow rule, default deny. */
typedef struct Authz {
    AuthzPolicy policy; /* when no rule matches */
    AuthzRule *rules;
    unsigned nrules;
} Authz;

/* Pure: whether `identity` (may be NULL: denied) passes `a`. */
bool authz_is_allowed(const Authz *a, const char *identity);

/*
 * Any thread: looks authz object `id` up and checks `identity`. False with
 * *errp when the object is missing, not an authz object, or denies.
 */
bool authz_check_by_id(const char *id, const char *identity, GError **errp);

/* Registers authz-simple and authz-list. */
void authz_register_types(void);

#endif /* CRYPTO_AUTHZ_H */
