/*
 * key=value arguments from the command line, checked against a table.
 * Sizes take K/M/G/T suffixes (powers of 1024); a plain number is bytes.
 */
#include "rt.h"

bool parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    unsigned base = 10;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9') {
            d = *s - '0';
        } else if (base == 16 && *s >= 'a' && *s <= 'f') {
            d = *s - 'a' + 10;
        } else if (base == 16 && *s >= 'A' && *s <= 'F') {
            d = *s - 'A' + 10;
        } else {
            return false;
        }
        if (v > (UINT64_MAX - d) / base) {
            return false;
        }
        v = v * base + d;
    }
    *out = v;
    return true;
}

bool parse_size(const char *s, uint64_t *out)
{
    char num[32];
    size_t n = strlen(s);
    unsigned shift = 0;
    uint64_t v;

    if (n == 0 || n >= sizeof(num)) {
        return false;
    }
    switch (s[n - 1]) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        break;
    }
    if (shift) {
        n--;
    }
    memcpy(num, s, n);
    num[n] = '\0';
    if (!parse_uint(num, &v) || (shift && v > (UINT64_MAX >> shift))) {
        return false;
    }
    *out = v << shift;
    return true;
}

static bool parse_one(const ArgSpec *a, const char *val)
{
    switch (a->type) {
    case ARG_UINT:
        return parse_uint(val, a->val);
    case ARG_SIZE:
        return parse_size(val, a->val);
    case ARG_CHOICE:
        for (uint64_t i = 0; a->choices[i]; i++) {
            if (!strcmp(val, a->choices[i])) {
                *a->val = i;
                return true;
            }
        }
        return false;
    }
    return false;
}

bool args_parse(int argc, char **argv, const ArgSpec *specs)
{
    for (int i = 0; i < argc; i++) {
        const char *tok = argv[i], *eq = tok;
        const ArgSpec *a;

        while (*eq && *eq != '=') {
            eq++;
        }
        for (a = specs; a->key; a++) {
            size_t n = strlen(a->key);
            if (*eq == '=' && (size_t)(eq - tok) == n &&
                !strncmp(tok, a->key, n)) {
                break;
            }
        }
        if (!a->key) {
            rt_printf("%s: unknown argument '%s'\n", payload_name, tok);
            return false;
        }
        if (!parse_one(a, eq + 1)) {
            rt_printf("%s: invalid value '%s' for %s\n", payload_name, eq + 1,
                      a->key);
            return false;
        }
    }
    return true;
}
