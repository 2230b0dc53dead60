/*
 * fill: write `size` bytes once with a pattern of known compressibility,
 * then park. Under godwit, each x-guest-request (request counter change)
 * refills the same region with a new seed, so a test knows exactly which
 * pages were written.
 *
 * Arguments: size=SIZE (64M) pattern=random|half|text|zero (random)
 *   random  xorshift64, incompressible
 *   half    each 4 KiB page: 2 KiB random, 2 KiB of one repeated byte
 *   text    English-like words, spaces, sentences and lines
 *   zero    zero bytes (every word written)
 * Output: fill: done [pass=K ]bytes=N pattern=P region 0xSTART-0xEND
 */
#include "rt.h"
#include "mix.h"

const char payload_name[] = "fill";

enum { PAT_RANDOM, PAT_HALF, PAT_TEXT, PAT_ZERO };
static const char *const fill_patterns[] = {
    "random", "half", "text", "zero", NULL,
};

/* clang-format off */
static const char *const fill_words[] = {
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

#define NWORDS (sizeof(fill_words) / sizeof(fill_words[0]))

static void fill_text(char *p, uint64_t *rng)
{
    unsigned col = 0;
    bool cap = true;
    size_t i = 0;

    while (i < PAGE_SIZE) {
        uint64_t r = xorshift64(rng);
        const char *w = fill_words[(r >> 8) % NWORDS];

        for (size_t k = 0; w[k] && i < PAGE_SIZE; k++) {
            char ch = w[k];
            p[i++] = (cap && k == 0) ? (char)(ch - 'a' + 'A') : ch;
        }
        cap = false;
        col += 8;
        if (i < PAGE_SIZE && (r & 0xf) == 0) {
            p[i++] = '.';
            cap = true;
        } else if (i < PAGE_SIZE && (r & 0x1f) == 1) {
            p[i++] = ',';
        }
        if (i < PAGE_SIZE) {
            p[i++] = col > 64 ? '\n' : ' ';
            col = col > 64 ? 0 : col;
        }
    }
}

static void fill_page(uint64_t addr, uint64_t pattern, uint64_t seed)
{
    uint64_t *p = (uint64_t *)(uintptr_t)addr;
    uint64_t rng = mix64(seed ^ (addr >> 12)) | 1;
    unsigned i;

    switch (pattern) {
    case PAT_RANDOM:
        for (i = 0; i < PAGE_SIZE / 8; i++) {
            p[i] = xorshift64(&rng);
        }
        break;
    case PAT_HALF:
        for (i = 0; i < PAGE_SIZE / 16; i++) {
            p[i] = xorshift64(&rng);
        }
        for (; i < PAGE_SIZE / 8; i++) {
            p[i] = (rng & 0xff) * 0x0101010101010101ull;
        }
        break;
    case PAT_TEXT:
        fill_text((char *)p, &rng);
        break;
    default:
        for (i = 0; i < PAGE_SIZE / 8; i++) {
            p[i] = 0;
        }
        break;
    }
}

static void fill_region(RtCpu *c, uint64_t base, uint64_t bytes,
                        uint64_t pattern, uint64_t seed)
{
    for (uint64_t off = 0; off < bytes; off += PAGE_SIZE) {
        fill_page(base + off, pattern, seed);
        if (off && off % (256 * MiB) == 0) {
            rt_report(c, GW_REPORT_PROGRESS, off, 0, 0);
        }
    }
    rt_report(c, GW_REPORT_PROGRESS, bytes, 1, 0);
}

void payload_main(int argc, char **argv)
{
    RtCpu *c = &rt_cpus[0];
    uint64_t size = 64 * MiB, pattern = PAT_RANDOM, bytes, base;
    const ArgSpec specs[] = {
        {"size", ARG_SIZE, &size, NULL},
        {"pattern", ARG_CHOICE, &pattern, fill_patterns},
        {NULL, ARG_UINT, NULL, NULL},
    };

    if (!args_parse(argc, argv, specs)) {
        rt_park_forever(c);
    }
    if (!size) {
        rt_fail(c, "size must be positive");
    }
    bytes = ALIGN_UP(size, PAGE_SIZE);
    base = mem_alloc(bytes, 2 * MiB);
    if (!base) {
        rt_fail(c, "not enough memory for %lu bytes", bytes);
    }
    fill_region(c, base, bytes, pattern, 0);
    rt_printf("fill: done bytes=%lu pattern=%s region 0x%lx-0x%lx\n", bytes,
              fill_patterns[pattern], base, base + bytes);
    rt_printf("READY\n");
    for (uint64_t pass = 1;;) {
        if (rt_park(c) & RT_EV_REQUEST) {
            fill_region(c, base, bytes, pattern, mix64(pass));
            rt_printf("fill: done pass=%lu bytes=%lu pattern=%s "
                      "region 0x%lx-0x%lx\n",
                      pass, bytes, fill_patterns[pattern], base, base + bytes);
            pass++;
        }
    }
}
