/*
 * The page contents of the `fill` payload's patterns, shared with the host
 * benchmark that measures compression on the same data
 * (tests/bench/bench-compress.c). Freestanding: no libc.
 *   random  xorshift64, incompressible
 *   half    each 4 KiB page: 2 KiB random, 2 KiB of one repeated byte
 *   text    English-like words, spaces, sentences and lines
 *   zero    zero bytes (every word written)
 */
#ifndef GUEST_FILL_PATTERN_H
#define GUEST_FILL_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mix.h"

#define FILL_PAGE_SIZE 4096

enum { FILL_RANDOM, FILL_HALF, FILL_TEXT, FILL_ZERO };

static inline void fill_text(char *p, uint64_t *rng)
{
    /* clang-format off */
    static const char *const words[] = {
        "the", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on",
        "are", "as", "with", "his", "they", "at", "be", "this", "from", "have",
        "or", "by", "one", "had", "not", "but", "what", "all", "were", "when",
        "we", "there", "can", "an", "your", "which", "their", "said", "if",
        "do", "will", "each", "about", "how", "up", "out", "them", "then",
        "she", "many", "some", "so", "these", "would", "other", "into", "has",
        "more", "her", "two", "like", "him", "see", "time", "could", "no",
        "make", "than", "first", "been", "its", "who", "now", "people", "my",
        "made", "over", "did", "down", "only", "way", "find", "use", "may",
        "water", "long", "little", "very", "after", "words", "called", "just",
        "where", "most", "know", "get", "through", "back", "much", "before",
        "go", "good", "new", "write", "our", "used", "me", "man", "too", "any",
        "day", "same", "right", "look", "think", "also", "around", "another",
        "came", "come", "work", "three", "word", "must", "because", "does",
        "part", "even", "place", "well", "such", "here", "take", "why",
        "things", "help", "put", "years", "different", "away", "again", "off",
        "went", "old", "number", "great", "tell", "men", "say", "small",
        "every", "found", "still", "between", "name", "should", "home", "big",
        "give", "air", "line", "set", "own", "under", "read", "last", "never",
        "us", "left", "end", "along", "while", "might", "next", "sound",
        "below", "saw", "something", "thought", "both", "few", "those",
        "always", "looked", "show", "large", "often", "together", "asked",
        "house", "world", "going", "want", "school", "important", "until",
        "form", "food", "keep", "children", "feet", "land", "side", "without",
        "boy", "once", "animals", "life", "enough", "took", "sometimes",
        "four", "head", "above", "kind", "began", "almost", "live", "page",
        "got", "earth", "need", "far", "hand", "high", "year", "mother",
        "light", "country", "father", "let", "night", "picture", "being",
        "study", "second", "soon", "story", "since", "white", "ever", "paper",
        "hard", "near", "sentence", "better", "best", "across", "during",
        "today", "however", "sure", "knew", "try", "told", "young", "sun",
    };
    /* clang-format on */
    const size_t nwords = sizeof(words) / sizeof(words[0]);
    unsigned col = 0;
    bool cap = true;
    size_t i = 0;

    while (i < FILL_PAGE_SIZE) {
        uint64_t r = xorshift64(rng);
        const char *w = words[(r >> 8) % nwords];

        for (size_t k = 0; w[k] && i < FILL_PAGE_SIZE; k++) {
            char ch = w[k];
            p[i++] = (cap && k == 0) ? (char)(ch - 'a' + 'A') : ch;
        }
        cap = false;
        col += 8;
        if (i < FILL_PAGE_SIZE && (r & 0xf) == 0) {
            p[i++] = '.';
            cap = true;
        } else if (i < FILL_PAGE_SIZE && (r & 0x1f) == 1) {
            p[i++] = ',';
        }
        if (i < FILL_PAGE_SIZE) {
            p[i++] = col > 64 ? '\n' : ' ';
            col = col > 64 ? 0 : col;
        }
    }
}

/* One page of `pattern` from the PRNG state `rng` (not zero). */
static inline void fill_pattern_page(void *page, unsigned pattern,
                                     uint64_t rng)
{
    uint64_t *p = page;
    unsigned i;

    switch (pattern) {
    case FILL_RANDOM:
        for (i = 0; i < FILL_PAGE_SIZE / 8; i++) {
            p[i] = xorshift64(&rng);
        }
        break;
    case FILL_HALF:
        for (i = 0; i < FILL_PAGE_SIZE / 16; i++) {
            p[i] = xorshift64(&rng);
        }
        for (; i < FILL_PAGE_SIZE / 8; i++) {
            p[i] = (rng & 0xff) * 0x0101010101010101ull;
        }
        break;
    case FILL_TEXT:
        fill_text((char *)page, &rng);
        break;
    default:
        for (i = 0; i < FILL_PAGE_SIZE / 8; i++) {
            p[i] = 0;
        }
        break;
    }
}

#endif /* GUEST_FILL_PATTERN_H */
