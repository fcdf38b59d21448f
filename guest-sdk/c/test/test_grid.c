/* test_grid.c: native unit tests of grid.h's CBOR reader, writer and wrappers.
 *
 * Runs on the build machine (x86_64, gcc) so the part of the C SDK that handles
 * untrusted bytes is tested in milliseconds, under AddressSanitizer, without an
 * engine: round trips, byte-exact encodings from RFC 8949 Appendix A and RFC 8746
 * (typed arrays), error messages naming argument positions, malformed and
 * truncated input, writer misuse, and the namespace wrappers against an in-memory
 * stand-in for the host.
 *
 * It stubs the four `grid` imports, and allocates from an arena mapped below 4 GiB
 * because the ABI packs pointers into 32 bits. It must not need wasm tooling;
 * run.sh builds and runs it.
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <stddef.h>

static void *arena_malloc(size_t n);
static void *arena_realloc(void *p, size_t n);
static void arena_free(void *p);

#define GRID_MALLOC(n) arena_malloc(n)
#define GRID_REALLOC(p, n) arena_realloc(p, n)
#define GRID_FREE(p) arena_free(p)
#define GRID_IMPLEMENTATION
#include "grid.h"

/* ---- harness ------------------------------------------------------------ */

static int failures;
static int checks;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__,    \
                    __func__, #cond);                                               \
        }                                                                           \
    } while (0)

#define CHECK_STR(got, want)                                                        \
    do {                                                                            \
        const char *got_ = (got), *want_ = (want);                                  \
        checks++;                                                                   \
        if (strcmp(got_, want_) != 0) {                                             \
            failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", __FILE__,       \
                    __LINE__, __func__, got_, want_);                               \
        }                                                                           \
    } while (0)

/* ---- an allocator below 4 GiB that counts live blocks and checks overruns --- */

#define ARENA_SIZE (64u << 20)
#define GUARD 16
static unsigned char *arena;
static size_t arena_used;
static long live_blocks;

typedef struct block {
    size_t size;
    size_t freed;
} block;

static void *arena_malloc(size_t n) {
    size_t need = sizeof(block) + ((n + 15) & ~(size_t)15) + GUARD;
    block *b;
    if (arena == NULL) {
        arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (arena == MAP_FAILED) {
            perror("mmap");
            exit(2);
        }
    }
    if (need > ARENA_SIZE - arena_used) return NULL;
    b = (block *)(arena + arena_used);
    arena_used += need;
    b->size = n;
    b->freed = 0;
    memset((unsigned char *)(b + 1) + n, 0xab, GUARD);
    live_blocks++;
    return b + 1;
}

static void arena_free(void *p) {
    block *b;
    size_t i;
    if (p == NULL) return;
    b = (block *)p - 1;
    if (b->freed) {
        fprintf(stderr, "double free of %p\n", p);
        abort();
    }
    for (i = 0; i < GUARD; i++) {
        if (((unsigned char *)p)[b->size + i] != 0xab) {
            fprintf(stderr, "write past the end of a %zu-byte block\n", b->size);
            abort();
        }
    }
    b->freed = 1;
    live_blocks--;
}

static void *arena_realloc(void *p, size_t n) {
    void *q = arena_malloc(n);
    if (q != NULL && p != NULL) {
        size_t old = ((block *)p - 1)->size;
        memcpy(q, p, old < n ? old : n);
        arena_free(p);
    }
    return q;
}

/* ---- stubs for the `grid` imports --------------------------------------- */

static jmp_buf panic_jump;
static char panic_message[256];
static int panic_armed;

void grid_panic_raw(const void *msg, size_t len) {
    if (len >= sizeof panic_message) len = sizeof panic_message - 1;
    memcpy(panic_message, msg, len);
    panic_message[len] = '\0';
    if (!panic_armed) {
        fprintf(stderr, "unexpected panic: %s\n", panic_message);
        abort();
    }
    longjmp(panic_jump, 1);
}

/* Runs `stmt` expecting it to panic; leaves the message in panic_message. */
#define EXPECT_PANIC(stmt)                                                          \
    do {                                                                            \
        panic_message[0] = '\0';                                                    \
        panic_armed = 1;                                                            \
        if (setjmp(panic_jump) == 0) {                                              \
            stmt;                                                                   \
            panic_armed = 0;                                                        \
            CHECK(!"expected a panic");                                             \
        }                                                                           \
        panic_armed = 0;                                                            \
    } while (0)

#define NS_SLOTS 8
static struct {
    char name[32];
    unsigned char value[64];
    size_t len;
    int used;
} ns[NS_SLOTS];

static int ns_find(const void *name, size_t len) {
    int i;
    for (i = 0; i < NS_SLOTS; i++)
        if (ns[i].used && strlen(ns[i].name) == len && memcmp(ns[i].name, name, len) == 0)
            return i;
    return -1;
}

int64_t grid_ns_get_raw(const void *name, size_t name_len) {
    int i = ns_find(name, name_len);
    void *copy;
    if (i < 0) return -1;
    /* As the engine does: through the guest's own allocator. */
    copy = grid_alloc(ns[i].len);
    memcpy(copy, ns[i].value, ns[i].len);
    return grid_pack(copy, ns[i].len);
}

int32_t grid_ns_set_raw(const void *name, size_t name_len, const void *val, size_t val_len) {
    grid_reader r;
    int i = ns_find(name, name_len);
    if (grid_value_begin(&r, val, val_len) != GRID_OK) return -1;
    if (i < 0) {
        for (i = 0; i < NS_SLOTS && ns[i].used; i++) {
        }
        if (i == NS_SLOTS || name_len >= sizeof ns[i].name) abort();
        memcpy(ns[i].name, name, name_len);
        ns[i].name[name_len] = '\0';
        ns[i].used = 1;
    }
    if (val_len > sizeof ns[i].value) abort();
    memcpy(ns[i].value, val, val_len);
    ns[i].len = val_len;
    return 0;
}

int32_t grid_ns_del_raw(const void *name, size_t name_len) {
    int i = ns_find(name, name_len);
    if (i < 0) return 0;
    ns[i].used = 0;
    return 1;
}

/* ---- helpers ------------------------------------------------------------ */

/* Parses "a1 62 6f 6b" (spaces optional) into buf; returns the length. */
static size_t unhex(const char *hex, unsigned char *buf, size_t cap) {
    size_t n = 0;
    while (*hex) {
        unsigned v;
        if (*hex == ' ') {
            hex++;
            continue;
        }
        if (sscanf(hex, "%2x", &v) != 1 || n == cap) abort();
        buf[n++] = (unsigned char)v;
        hex += 2;
    }
    return n;
}

/* An exact-size heap copy, so AddressSanitizer catches any read past the end. */
static unsigned char *heap_copy(const unsigned char *p, size_t n) {
    unsigned char *q = malloc(n ? n : 1);
    if (q == NULL) abort();
    if (n) memcpy(q, p, n);
    return q;
}

/* True if the writer's finished bytes equal `hex`. */
static int writer_is(grid_writer *w, const char *hex) {
    unsigned char want[256];
    size_t n = unhex(hex, want, sizeof want);
    return grid_writer_done(w) == GRID_OK && w->len == n && memcmp(w->buf, want, n) == 0;
}

/* True if the packed result locates exactly the bytes `hex`; frees the result. */
static int result_is(int64_t packed, const char *hex) {
    unsigned char want[256];
    size_t n = unhex(hex, want, sizeof want);
    unsigned char *p = (unsigned char *)(uintptr_t)(uint32_t)((uint64_t)packed >> 32);
    size_t len = (uint32_t)packed;
    int same = len == n && memcmp(p, want, n) == 0;
    if (!same) {
        size_t i;
        fprintf(stderr, "result bytes:");
        for (i = 0; i < len; i++) fprintf(stderr, " %02x", p[i]);
        fprintf(stderr, "\n");
    }
    grid_free(p, len);
    return same;
}

/* Starts an args reader over a heap copy of `hex`; free *copy afterwards. */
static grid_status args_from_hex(grid_reader *r, const char *hex, unsigned char **copy) {
    unsigned char buf[512];
    size_t n = unhex(hex, buf, sizeof buf);
    *copy = heap_copy(buf, n);
    return grid_args_begin(r, *copy, n);
}

/* ---- tests -------------------------------------------------------------- */

/* Encodings from RFC 8949 Appendix A: the writer must produce exactly these. */
static void test_writer_encodings(void) {
    static const struct {
        int64_t v;
        const char *hex;
    } ints[] = {
        {0, "00"},
        {1, "01"},
        {23, "17"},
        {24, "1818"},
        {100, "1864"},
        {255, "18ff"},
        {256, "190100"},
        {1000, "1903e8"},
        {65535, "19ffff"},
        {65536, "1a00010000"},
        {1000000, "1a000f4240"},
        {4294967295, "1affffffff"},
        {4294967296, "1b0000000100000000"},
        {1000000000000, "1b000000e8d4a51000"},
        {INT64_MAX, "1b7fffffffffffffff"},
        {-1, "20"},
        {-10, "29"},
        {-24, "37"},
        {-25, "3818"},
        {-100, "3863"},
        {-1000, "3903e7"},
        {INT64_MIN, "3b7fffffffffffffff"},
    };
    size_t i;
    grid_writer w;
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        grid_writer_init(&w);
        grid_write_int(&w, ints[i].v);
        if (!writer_is(&w, ints[i].hex))
            fprintf(stderr, "int %lld should encode as %s\n", (long long)ints[i].v, ints[i].hex);
        CHECK(writer_is(&w, ints[i].hex));
        grid_writer_release(&w);
    }

    grid_writer_init(&w);
    grid_write_double(&w, 1.1);
    CHECK(writer_is(&w, "fb3ff199999999999a"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_double(&w, -4.1);
    CHECK(writer_is(&w, "fbc010666666666666"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_str(&w, "");
    CHECK(writer_is(&w, "60"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_str(&w, "IETF");
    CHECK(writer_is(&w, "6449455446"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_str(&w, "\xc3\xbc"); /* u with diaeresis */
    CHECK(writer_is(&w, "62c3bc"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_bytes(&w, "\x01\x02\x03\x04", 4);
    CHECK(writer_is(&w, "4401020304"));
    grid_writer_release(&w);

    /* [1, [2, 3], [4, 5]] */
    grid_writer_init(&w);
    grid_write_array(&w, 3);
    grid_write_int(&w, 1);
    grid_write_array(&w, 2);
    grid_write_int(&w, 2);
    grid_write_int(&w, 3);
    grid_write_array(&w, 2);
    grid_write_int(&w, 4);
    grid_write_int(&w, 5);
    CHECK(writer_is(&w, "8301820203820405"));
    grid_writer_release(&w);

    /* {"a": 1, "b": [2, 3]} */
    grid_writer_init(&w);
    grid_write_map(&w, 2);
    grid_write_str(&w, "a");
    grid_write_int(&w, 1);
    grid_write_str(&w, "b");
    grid_write_array(&w, 2);
    grid_write_int(&w, 2);
    grid_write_int(&w, 3);
    CHECK(writer_is(&w, "a26161016162820203"));
    grid_writer_release(&w);

    /* [true, false, null, [], {}] */
    grid_writer_init(&w);
    grid_write_array(&w, 5);
    grid_write_bool(&w, true);
    grid_write_bool(&w, false);
    grid_write_null(&w);
    grid_write_array(&w, 0);
    grid_write_map(&w, 0);
    CHECK(writer_is(&w, "85f5f4f680a0"));
    grid_writer_release(&w);

    /* A text longer than the writer's first buffer, to exercise growth. */
    {
        char big[1000];
        memset(big, 'x', sizeof big);
        grid_writer_init(&w);
        grid_write_text(&w, big, sizeof big);
        CHECK(grid_writer_done(&w) == GRID_OK);
        CHECK(w.len == 3 + sizeof big);
        CHECK(w.buf[0] == 0x79 && w.buf[1] == 0x03 && w.buf[2] == 0xe8);
        grid_writer_release(&w);
    }
}

static void test_envelopes(void) {
    long before = live_blocks;
    CHECK(result_is(grid_ok_int(49), "a1626f6b1831"));
    CHECK(result_is(grid_ok_int(-3), "a1626f6b22"));
    CHECK(result_is(grid_ok_null(), "a1626f6bf6"));
    CHECK(result_is(grid_ok_bool(true), "a1626f6bf5"));
    CHECK(result_is(grid_ok_double(6.5), "a1626f6bfb401a000000000000"));
    CHECK(result_is(grid_ok_str("hi Ada"), "a1626f6b666869204164 61"));
    CHECK(result_is(grid_ok_text("hi Ada", 2), "a1626f6b626869"));
    CHECK(result_is(grid_ok_bytes("\x00\xff", 2), "a1626f6b4200ff"));
    CHECK(result_is(grid_err("division by zero"),
                    "a163657272 70 6469766973696f6e206279207a65726f"));
    CHECK(result_is(grid_errf("n=%d", 5), "a163657272 636e3d35"));
    CHECK(result_is(grid_bad_arguments("no"), "a16d6261645f617267756d656e7473 626e6f"));

    /* A composite result: {"ok": {"n": [1, 2]}} */
    {
        grid_writer w;
        grid_writer_begin_ok(&w);
        grid_write_map(&w, 1);
        grid_write_str(&w, "n");
        grid_write_array(&w, 2);
        grid_write_int(&w, 1);
        grid_write_int(&w, 2);
        CHECK(result_is(grid_writer_finish(&w), "a1626f6b a1 616e 82 01 02"));
    }
    /* {"err": {"message": "x"}} */
    {
        grid_writer w;
        grid_writer_begin_err(&w);
        grid_write_map(&w, 1);
        grid_write_str(&w, "message");
        grid_write_str(&w, "x");
        CHECK(result_is(grid_writer_finish(&w), "a163657272 a1 676d657373616765 6178"));
    }
    CHECK(live_blocks == before);
}

/* Writer misuse is a guest bug: grid_writer_finish panics and says why. */
static void test_writer_misuse(void) {
    grid_writer w;
    long before = live_blocks;

    grid_writer_begin_ok(&w);
    grid_write_int(&w, 1);
    CHECK(grid_write_int(&w, 2) == GRID_E_COUNT);
    CHECK(grid_write_int(&w, 3) == GRID_E_COUNT); /* sticky */
    EXPECT_PANIC(grid_writer_finish(&w));
    CHECK(strstr(panic_message, "more values written") != NULL);

    grid_writer_begin_ok(&w);
    grid_write_array(&w, 2);
    grid_write_int(&w, 1);
    CHECK(grid_writer_done(&w) == GRID_E_COUNT);
    EXPECT_PANIC(grid_writer_finish(&w));
    CHECK(strstr(panic_message, "incomplete") != NULL);

    grid_writer_begin_ok(&w);
    EXPECT_PANIC(grid_writer_finish(&w)); /* nothing written */
    CHECK(strstr(panic_message, "cannot build the result") != NULL);

    grid_writer_begin_ok(&w);
    CHECK(grid_write_text(&w, "\xff", 1) == GRID_E_MALFORMED);
    EXPECT_PANIC(grid_writer_finish(&w));
    CHECK(strstr(panic_message, "UTF-8") != NULL);

    EXPECT_PANIC(grid_err("bad \xc0\x80 text")); /* overlong NUL */

    /* Nesting past GRID_MAX_DEPTH. */
    {
        int i;
        grid_writer_begin_ok(&w);
        for (i = 0; i < GRID_MAX_DEPTH - 1; i++) grid_write_array(&w, 1);
        CHECK(w.status == GRID_OK);
        CHECK(grid_write_array(&w, 1) == GRID_E_UNSUPPORTED);
        EXPECT_PANIC(grid_writer_finish(&w));
    }
    CHECK(live_blocks == before);
}

/* Whatever the writer writes, the reader reads back unchanged. */
static void test_round_trip(void) {
    static const int64_t ints[] = {0, 1, 23, 24, 255, 256, 65535, 65536, 4294967295,
                                   4294967296, INT64_MAX, -1, -24, -25, -256, -257,
                                   -4294967296, -4294967297, INT64_MIN};
    static const double doubles[] = {0.0, -0.0, 1.5, -4.1, 1e300, -1e-300, 5e-324};
    grid_writer w;
    grid_reader r;
    size_t i, n;
    int64_t iv;
    double dv;
    bool bv;
    const char *text;
    const uint8_t *bytes;
    char *cstr;
    unsigned char *copy;

    const size_t count = sizeof ints / sizeof ints[0] + sizeof doubles / sizeof doubles[0] + 9;

    grid_writer_init(&w);
    grid_write_array(&w, count);
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++) grid_write_int(&w, ints[i]);
    for (i = 0; i < sizeof doubles / sizeof doubles[0]; i++) grid_write_double(&w, doubles[i]);
    grid_write_double(&w, INFINITY);
    grid_write_double(&w, NAN);
    grid_write_bool(&w, true);
    grid_write_bool(&w, false);
    grid_write_null(&w);
    grid_write_text(&w, "h\xc3\xa9llo", 6);
    grid_write_bytes(&w, "\x00\x01\xff", 3);
    grid_write_map(&w, 2);
    grid_write_str(&w, "k");
    grid_write_array(&w, 1);
    grid_write_str(&w, "deep");
    grid_write_int(&w, 7);
    grid_write_null(&w);
    grid_write_str(&w, "last");
    CHECK(grid_writer_done(&w) == GRID_OK);

    copy = heap_copy(w.buf, w.len);
    CHECK(grid_args_begin(&r, copy, w.len) == GRID_OK);
    CHECK(grid_args_count(&r) == count);
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        CHECK(grid_peek(&r) == GRID_TYPE_INT);
        CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == ints[i]);
    }
    for (i = 0; i < sizeof doubles / sizeof doubles[0]; i++) {
        CHECK(grid_peek(&r) == GRID_TYPE_FLOAT);
        CHECK(grid_read_double(&r, &dv) == GRID_OK && memcmp(&dv, &doubles[i], sizeof dv) == 0);
    }
    CHECK(grid_read_double(&r, &dv) == GRID_OK && isinf(dv) && dv > 0);
    CHECK(grid_read_double(&r, &dv) == GRID_OK && isnan(dv));
    CHECK(grid_read_bool(&r, &bv) == GRID_OK && bv);
    CHECK(grid_read_bool(&r, &bv) == GRID_OK && !bv);
    CHECK(grid_peek(&r) == GRID_TYPE_NULL);
    CHECK(grid_read_null(&r) == GRID_OK);
    CHECK(grid_peek(&r) == GRID_TYPE_TEXT);
    CHECK(grid_read_text(&r, &text, &n) == GRID_OK && n == 6);
    CHECK(memcmp(text, "h\xc3\xa9llo", 6) == 0);
    CHECK(grid_peek(&r) == GRID_TYPE_BYTES);
    CHECK(grid_read_bytes(&r, &bytes, &n) == GRID_OK && n == 3);
    CHECK(memcmp(bytes, "\x00\x01\xff", 3) == 0);
    CHECK(grid_peek(&r) == GRID_TYPE_MAP);
    CHECK(grid_read_map(&r, &n) == GRID_OK && n == 2);
    CHECK(grid_read_cstr(&r, &cstr) == GRID_OK && strcmp(cstr, "k") == 0);
    grid_free(cstr, 0);
    CHECK(grid_peek(&r) == GRID_TYPE_ARRAY);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 1);
    CHECK(grid_read_text(&r, &text, &n) == GRID_OK && n == 4 && memcmp(text, "deep", 4) == 0);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 7);
    CHECK(grid_read_skip(&r) == GRID_OK); /* the null value of key 7 */
    CHECK(grid_read_text(&r, &text, &n) == GRID_OK && n == 4);
    CHECK(grid_peek(&r) == GRID_TYPE_NONE);
    CHECK(grid_reader_end(&r) == GRID_OK);
    CHECK(grid_reader_message(&r)[0] == '\0');
    free(copy);
    grid_writer_release(&w);
}

/* Floats of every width, and integers, read as doubles (RFC 8949 Appendix A). */
static void test_read_double_forms(void) {
    static const struct {
        const char *hex;
        double want;
    } cases[] = {
        {"f90000", 0.0},          {"f93c00", 1.0},         {"f93e00", 1.5},
        {"f97bff", 65504.0},      {"f90001", 5.960464477539063e-8},
        {"f90400", 0.00006103515625}, {"f9c400", -4.0},    {"fa47c35000", 100000.0},
        {"fa7f7fffff", 3.4028234663852886e+38}, {"fb3ff199999999999a", 1.1},
        {"00", 0.0},              {"1864", 100.0},         {"3863", -100.0},
        {"1bffffffffffffffff", 18446744073709551615.0},
        {"3bffffffffffffffff", -18446744073709551616.0},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char buf[16], *copy;
        grid_reader r;
        double d = -123;
        size_t n = unhex(cases[i].hex, buf, sizeof buf);
        copy = heap_copy(buf, n);
        CHECK(grid_value_begin(&r, copy, n) == GRID_OK);
        CHECK(grid_read_double(&r, &d) == GRID_OK);
        if (d != cases[i].want) fprintf(stderr, "%s read as %.17g\n", cases[i].hex, d);
        CHECK(d == cases[i].want);
        CHECK(grid_reader_end(&r) == GRID_OK);
        free(copy);
    }
    {
        unsigned char *copy;
        grid_reader r;
        double d = -123;
        unsigned char buf[3];
        /* -0.0, Infinity, NaN as halves */
        unhex("f98000", buf, 3);
        copy = heap_copy(buf, 3);
        CHECK(grid_value_begin(&r, copy, 3) == GRID_OK && grid_read_double(&r, &d) == GRID_OK);
        CHECK(d == 0.0 && signbit(d));
        free(copy);
        unhex("f97c00", buf, 3);
        copy = heap_copy(buf, 3);
        CHECK(grid_value_begin(&r, copy, 3) == GRID_OK && grid_read_double(&r, &d) == GRID_OK);
        CHECK(isinf(d) && d > 0);
        free(copy);
        unhex("f97e00", buf, 3);
        copy = heap_copy(buf, 3);
        CHECK(grid_value_begin(&r, copy, 3) == GRID_OK && grid_read_double(&r, &d) == GRID_OK);
        CHECK(isnan(d));
        free(copy);
    }
}

/* Type, count and range errors name the argument, counted from 1. */
static void test_argument_errors(void) {
    grid_reader r;
    unsigned char *copy;
    int64_t iv;
    double dv;
    size_t n;
    const char *text;
    char *cstr;

    /* [7, "x"] read as two ints */
    CHECK(args_from_hex(&r, "82 07 6178", &copy) == GRID_OK);
    CHECK(grid_args_expect(&r, 2) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 7);
    CHECK(grid_read_int(&r, &iv) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 2: expected integer, got string");
    /* Sticky: later reads fail with the same status and keep the first message. */
    CHECK(grid_read_text(&r, &text, &n) == GRID_E_TYPE);
    CHECK(grid_reader_status(&r) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 2: expected integer, got string");
    CHECK(grid_peek(&r) == GRID_TYPE_NONE);
    CHECK(result_is(grid_bad_arguments_from(&r),
                    "a16d6261645f617267756d656e7473 78 28"
                    "617267756d656e7420323a20657870656374656420"
                    "696e74656765722c20676f7420737472696e67"));
    free(copy);

    /* wrong count */
    CHECK(args_from_hex(&r, "81 07", &copy) == GRID_OK);
    CHECK(grid_args_expect(&r, 2) == GRID_E_COUNT);
    CHECK_STR(grid_reader_message(&r), "expected 2 arguments, got 1");
    free(copy);
    CHECK(args_from_hex(&r, "80", &copy) == GRID_OK);
    CHECK(grid_args_expect(&r, 1) == GRID_E_COUNT);
    CHECK_STR(grid_reader_message(&r), "expected 1 argument, got 0");
    free(copy);

    /* reading past the last argument */
    CHECK(args_from_hex(&r, "81 07", &copy) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_E_MISSING);
    CHECK_STR(grid_reader_message(&r), "missing argument 2: got 1");
    free(copy);

    /* unread arguments */
    CHECK(args_from_hex(&r, "82 07 08", &copy) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK);
    CHECK(grid_reader_end(&r) == GRID_E_COUNT);
    CHECK_STR(grid_reader_message(&r), "expected 1 argument, got 2");
    free(copy);

    /* a float is not an integer, even 2.0 */
    CHECK(args_from_hex(&r, "81 f94000", &copy) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 1: expected integer, got float");
    free(copy);

    /* integers outside int64 */
    CHECK(args_from_hex(&r, "82 1b8000000000000000 3b8000000000000000", &copy) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_E_RANGE);
    CHECK_STR(grid_reader_message(&r), "argument 1: integer out of int64 range");
    free(copy);
    CHECK(args_from_hex(&r, "82 01 3b8000000000000000", &copy) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_E_RANGE);
    free(copy);

    /* inside an array: [[1, "x"]] */
    CHECK(args_from_hex(&r, "81 82 01 6178", &copy) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 2);
    CHECK(grid_read_double(&r, &dv) == GRID_OK && dv == 1.0);
    CHECK(grid_read_double(&r, &dv) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 2: expected number, got string");
    free(copy);

    /* inside a map: [0, {"a": [true, 1]}] */
    CHECK(args_from_hex(&r, "82 00 a1 6161 82 f5 01", &copy) == GRID_OK);
    CHECK(grid_read_skip(&r) == GRID_OK);
    CHECK(grid_read_map(&r, &n) == GRID_OK && n == 1);
    CHECK(grid_read_text(&r, &text, &n) == GRID_OK && n == 1);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 2);
    CHECK(grid_read_skip(&r) == GRID_OK);
    CHECK(grid_read_bool(&r, &(bool){false}) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r),
              "argument 2, map value 1, item 2: expected bool, got integer");
    free(copy);

    /* a map key */
    CHECK(args_from_hex(&r, "81 a1 01 02", &copy) == GRID_OK);
    CHECK(grid_read_map(&r, &n) == GRID_OK);
    CHECK(grid_read_text(&r, &text, &n) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 1, map key 1: expected string, got integer");
    free(copy);

    /* items of an array left unread */
    CHECK(args_from_hex(&r, "81 83 01 02 03", &copy) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK);
    CHECK(grid_reader_end(&r) == GRID_E_COUNT);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 2: 2 values left unread from here");
    free(copy);

    /* after an array, reads continue with the next argument: [[1], 2] */
    CHECK(args_from_hex(&r, "82 81 01 02", &copy) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 1);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 1);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 2);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);

    /* C strings refuse an inner NUL rather than cutting the text short */
    CHECK(args_from_hex(&r, "81 63 610062", &copy) == GRID_OK);
    CHECK(grid_read_cstr(&r, &cstr) == GRID_E_RANGE);
    CHECK_STR(grid_reader_message(&r), "argument 1: string contains a NUL byte");
    free(copy);

    /* not an array at all */
    CHECK(args_from_hex(&r, "a0", &copy) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "arguments: expected an array, got map");
    CHECK(grid_args_count(&r) == 0);
    CHECK(grid_read_int(&r, &iv) == GRID_E_TYPE);
    free(copy);

    /* nesting deeper than the reader tracks is refused, not overflowed */
    {
        unsigned char deep[GRID_MAX_DEPTH + 3];
        size_t i;
        deep[0] = 0x81;
        for (i = 1; i < sizeof deep - 1; i++) deep[i] = 0x81;
        deep[sizeof deep - 1] = 0x00;
        copy = heap_copy(deep, sizeof deep);
        CHECK(grid_args_begin(&r, copy, sizeof deep) == GRID_OK);
        for (i = 1; i < GRID_MAX_DEPTH; i++) CHECK(grid_read_array(&r, &n) == GRID_OK);
        CHECK(grid_read_array(&r, &n) == GRID_E_UNSUPPORTED);
        free(copy);
        /* ... but skipping it is fine */
        copy = heap_copy(deep, sizeof deep);
        CHECK(grid_args_begin(&r, copy, sizeof deep) == GRID_OK);
        CHECK(grid_read_skip(&r) == GRID_OK);
        CHECK(grid_reader_end(&r) == GRID_OK);
        free(copy);
    }
}

/* Input that is not one well-formed array of Grid values fails in grid_args_begin. */
static void test_malformed(void) {
    static const struct {
        const char *hex;
        grid_status want;
    } cases[] = {
        {"", GRID_E_MALFORMED},                   /* nothing */
        {"18", GRID_E_MALFORMED},                 /* head cut short */
        {"82 01", GRID_E_MALFORMED},              /* one item of two */
        {"81 19 01", GRID_E_MALFORMED},           /* argument head cut short */
        {"81 65 6162", GRID_E_MALFORMED},         /* text cut short */
        {"81 5a ffffffff 00", GRID_E_MALFORMED},  /* huge byte string */
        {"81 7b ffffffffffffffff", GRID_E_MALFORMED},
        {"9b ffffffffffffffff", GRID_E_MALFORMED}, /* huge array */
        {"81 9b ffffffffffffffff 00", GRID_E_MALFORMED},
        {"81 bb 7fffffffffffffff 00", GRID_E_MALFORMED}, /* huge map */
        {"81 82 82 82 01", GRID_E_MALFORMED},     /* nested, cut short */
        {"81 1c", GRID_E_MALFORMED},              /* reserved additional information */
        {"81 ff", GRID_E_MALFORMED},              /* a break outside indefinite length */
        {"81 1f", GRID_E_MALFORMED},              /* indefinite integer */
        {"81 00 00", GRID_E_MALFORMED},           /* trailing byte */
        {"81 62 c328", GRID_E_MALFORMED},         /* invalid UTF-8 */
        {"81 62 c080", GRID_E_MALFORMED},         /* overlong NUL */
        {"81 63 eda080", GRID_E_MALFORMED},       /* surrogate */
        {"81 64 f4908080", GRID_E_MALFORMED},     /* above U+10FFFF */
        {"81 62 e282", GRID_E_MALFORMED},         /* sequence cut short */
        {"81 a1 6161 62 ff00", GRID_E_MALFORMED}, /* invalid UTF-8 deep inside */
        {"9f 01 ff", GRID_E_UNSUPPORTED},         /* indefinite array */
        {"81 7f 6161 ff", GRID_E_UNSUPPORTED},    /* indefinite text */
        {"81 c1 01", GRID_E_UNSUPPORTED},         /* tag */
        {"81 f7", GRID_E_UNSUPPORTED},            /* undefined */
        {"81 f0", GRID_E_UNSUPPORTED},            /* simple value */
        {"81 f820", GRID_E_UNSUPPORTED},          /* simple value, 1-byte form */
        {"01", GRID_E_TYPE},                      /* not an array */
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grid_reader r;
        unsigned char *copy;
        grid_status got = args_from_hex(&r, cases[i].hex, &copy);
        if (got != cases[i].want)
            fprintf(stderr, "\"%s\": got %s (%s)\n", cases[i].hex, grid_status_str(got),
                    grid_reader_message(&r));
        CHECK(got == cases[i].want);
        CHECK(grid_reader_message(&r)[0] != '\0');
        CHECK(grid_read_skip(&r) == got);
        free(copy);
    }
}

/* Every strict prefix of a valid encoding is refused; no prefix reads out of bounds. */
static void test_truncations(void) {
    grid_writer w;
    size_t cut;
    grid_writer_init(&w);
    grid_write_array(&w, 5);
    grid_write_int(&w, -1000000);
    grid_write_double(&w, 2.5);
    grid_write_str(&w, "h\xc3\xa9llo w\xc3\xb6rld");
    grid_write_map(&w, 1);
    grid_write_bytes(&w, "\x01\x02", 2);
    grid_write_array(&w, 2);
    grid_write_null(&w);
    grid_write_bool(&w, true);
    grid_write_int(&w, INT64_MIN);
    CHECK(grid_writer_done(&w) == GRID_OK);
    for (cut = 0; cut < w.len; cut++) {
        grid_reader r;
        unsigned char *copy = heap_copy(w.buf, cut);
        CHECK(grid_args_begin(&r, copy, cut) == GRID_E_MALFORMED);
        free(copy);
    }
    grid_writer_release(&w);
}

/* Random bytes never crash the reader (AddressSanitizer watches the reads). */
static void test_random_bytes(void) {
    uint32_t seed = 12345;
    int round;
    for (round = 0; round < 20000; round++) {
        unsigned char buf[24], *copy;
        size_t len, i, n;
        grid_reader r;
        int64_t iv;
        double dv;
        const char *text;
        seed = seed * 1664525u + 1013904223u;
        len = (seed >> 8) % sizeof buf;
        for (i = 0; i < len; i++) {
            seed = seed * 1664525u + 1013904223u;
            buf[i] = (unsigned char)(seed >> 24);
        }
        if (len > 0 && round % 2) buf[0] = (unsigned char)(0x80 | (buf[0] & 0x07)); /* an array */
        if (len > 3 && round % 3 == 0) { /* a typed array, or a tag near them */
            buf[1] = 0xd8;
            buf[2] = (unsigned char)(62 + buf[2] % 28);
        }
        copy = heap_copy(buf, len);
        grid_args_begin(&r, copy, len);
        for (i = 0; i < 8; i++) {
            switch (grid_peek(&r)) {
            case GRID_TYPE_INT: grid_read_int(&r, &iv); break;
            case GRID_TYPE_FLOAT: grid_read_double(&r, &dv); break;
            case GRID_TYPE_TEXT: grid_read_text(&r, &text, &n); break;
            case GRID_TYPE_ARRAY: grid_read_array(&r, &n); break;
            case GRID_TYPE_MAP: grid_read_map(&r, &n); break;
            default: grid_read_skip(&r); break;
            }
        }
        grid_reader_end(&r);
        grid_value_begin(&r, copy, len);
        grid_read_skip(&r);
        grid_args_begin(&r, copy, len);
        {
            double *doubles;
            int32_t *ints;
            if (grid_read_f64_array(&r, &doubles, &n) == GRID_OK) grid_free(doubles, 0);
            if (grid_read_i32_array(&r, &ints, &n) == GRID_OK) grid_free(ints, 0);
        }
        free(copy);
    }
    CHECK(1);
}

static void test_namespace(void) {
    long before = live_blocks;
    int64_t iv = 42;
    double dv = 0;
    char *text = NULL;
    size_t n = 0;
    uint8_t *cbor;

    CHECK(grid_ns_get_int("counter", &iv) == GRID_E_ABSENT);
    CHECK(iv == 42); /* untouched */
    CHECK(grid_ns_set_int("counter", 41) == GRID_OK);
    CHECK(grid_ns_get_int("counter", &iv) == GRID_OK && iv == 41);
    CHECK(grid_ns_get_double("counter", &dv) == GRID_OK && dv == 41.0);
    CHECK(grid_ns_set_int("counter", INT64_MIN) == GRID_OK);
    CHECK(grid_ns_get_int("counter", &iv) == GRID_OK && iv == INT64_MIN);

    CHECK(grid_ns_set_double("pi", 3.25) == GRID_OK);
    CHECK(grid_ns_get_double("pi", &dv) == GRID_OK && dv == 3.25);
    CHECK(grid_ns_get_int("pi", &iv) == GRID_E_TYPE);

    CHECK(grid_ns_set_str("who", "Ad\xc3\xa1") == GRID_OK);
    CHECK(grid_ns_get_text("who", &text, &n) == GRID_OK);
    CHECK(n == 4 && strcmp(text, "Ad\xc3\xa1") == 0);
    grid_free(text, 0);
    CHECK(grid_ns_get_int("who", &iv) == GRID_E_TYPE);
    CHECK(grid_ns_set_text("who", "", 0) == GRID_OK);
    CHECK(grid_ns_get_text("who", &text, &n) == GRID_OK && n == 0 && text[0] == '\0');
    grid_free(text, 0);
    CHECK(grid_ns_get_text("counter", &text, &n) == GRID_E_TYPE);

    CHECK(grid_ns_set_cbor("raw", "\x82\x01\x02", 3) == GRID_OK);
    CHECK(grid_ns_get_cbor("raw", &cbor, &n) == GRID_OK && n == 3);
    CHECK(memcmp(cbor, "\x82\x01\x02", 3) == 0);
    grid_free(cbor, n);
    CHECK(grid_ns_set_cbor("raw", "\x82\x01", 2) == GRID_E_MALFORMED); /* the host refuses it */
    CHECK(grid_ns_get_int("raw", &iv) == GRID_E_TYPE);

    CHECK(grid_ns_del("raw") == true);
    CHECK(grid_ns_del("raw") == false);
    CHECK(grid_ns_get_cbor("raw", &cbor, &n) == GRID_E_ABSENT);
    CHECK(live_blocks == before);
}

/* RFC 8746 encodings worked out by hand: tag, byte string, little-endian elements. */
static void test_typed_encodings(void) {
    static const double f64s[] = {1.5, -2.0};
    static const int32_t i32s[] = {1, -2, 0x01020304};
    static const uint64_t u64s[] = {0, 1, 2};
    static const double one[] = {-1.5};
    long before = live_blocks;
    grid_writer w;

    grid_writer_init(&w);
    CHECK(grid_write_f64_array(&w, f64s, 2) == GRID_OK);
    CHECK(writer_is(&w, "d856 50 000000000000f83f 00000000000000c0"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_i32_array(&w, i32s, 3);
    CHECK(writer_is(&w, "d84e 4c 01000000 feffffff 04030201"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_u64_array(&w, u64s, 3); /* 24 bytes: the one-byte length form */
    CHECK(writer_is(&w, "d847 5818 0000000000000000 0100000000000000 0200000000000000"));
    grid_writer_release(&w);

    grid_writer_init(&w);
    grid_write_u8_array(&w, NULL, 0);
    CHECK(writer_is(&w, "d840 40"));
    grid_writer_release(&w);

    /* Inside an array, counted as one value. */
    grid_writer_init(&w);
    grid_write_array(&w, 2);
    grid_write_f32_array(&w, (const float[]){1.5f}, 1);
    grid_write_null(&w);
    CHECK(writer_is(&w, "82 d855 44 0000c03f f6"));
    grid_writer_release(&w);

    CHECK(result_is(grid_ok_f64_array(one, 1), "a1626f6b d856 48 000000000000f8bf"));
    CHECK(result_is(grid_ok_i16_array((const int16_t[]){-1, 256}, 2), "a1626f6b d84d 44 ffff 0001"));

    grid_writer_begin_ok(&w);
    CHECK(grid_write_f64_array(&w, NULL, 1) == GRID_E_MALFORMED);
    EXPECT_PANIC(grid_writer_finish(&w));
    CHECK(strstr(panic_message, "array is NULL") != NULL);
    CHECK(live_blocks == before);
}

/* Every element type: the writer's typed array reads back with one memcpy. */
static void test_typed_round_trip(void) {
    static const uint8_t u8s[] = {0, 1, 255};
    static const int8_t i8s[] = {INT8_MIN, -1, INT8_MAX};
    static const uint16_t u16s[] = {0, 0x1234, UINT16_MAX};
    static const int16_t i16s[] = {INT16_MIN, -1, INT16_MAX};
    static const uint32_t u32s[] = {0, 0x12345678, UINT32_MAX};
    static const int32_t i32s[] = {INT32_MIN, -1, INT32_MAX};
    static const uint64_t u64s[] = {0, 0x0102030405060708u, UINT64_MAX};
    static const int64_t i64s[] = {INT64_MIN, -1, INT64_MAX};
    static const float f32s[] = {1.5f, -0.0f, 3.4e38f};
    static const double f64s[] = {1.5, -0.0, 5e-324};
    long before = live_blocks;
    grid_writer w;
    grid_reader r;
    unsigned char *copy;
    size_t n;
    uint8_t *u8;
    int8_t *i8;
    uint16_t *u16;
    int16_t *i16;
    uint32_t *u32;
    int32_t *i32;
    uint64_t *u64;
    int64_t *i64;
    float *f32;
    double *f64;

    grid_writer_init(&w);
    grid_write_array(&w, 11);
    grid_write_u8_array(&w, u8s, 3);
    grid_write_i8_array(&w, i8s, 3);
    grid_write_u16_array(&w, u16s, 3);
    grid_write_i16_array(&w, i16s, 3);
    grid_write_u32_array(&w, u32s, 3);
    grid_write_i32_array(&w, i32s, 3);
    grid_write_u64_array(&w, u64s, 3);
    grid_write_i64_array(&w, i64s, 3);
    grid_write_f32_array(&w, f32s, 3);
    grid_write_f64_array(&w, f64s, 3);
    grid_write_f64_array(&w, NULL, 0);
    CHECK(grid_writer_done(&w) == GRID_OK);
    copy = heap_copy(w.buf, w.len);
    CHECK(grid_args_begin(&r, copy, w.len) == GRID_OK);
#define READ_BACK(name, var, want)                                                       \
    CHECK(grid_read_##name##_array(&r, &var, &n) == GRID_OK && n == 3 &&                 \
          memcmp(var, want, sizeof want) == 0);                                         \
    grid_free(var, 0)
    READ_BACK(u8, u8, u8s);
    READ_BACK(i8, i8, i8s);
    READ_BACK(u16, u16, u16s);
    READ_BACK(i16, i16, i16s);
    READ_BACK(u32, u32, u32s);
    READ_BACK(i32, i32, i32s);
    READ_BACK(u64, u64, u64s);
    READ_BACK(i64, i64, i64s);
    READ_BACK(f32, f32, f32s);
    READ_BACK(f64, f64, f64s);
#undef READ_BACK
    CHECK(grid_read_f64_array(&r, &f64, &n) == GRID_OK && n == 0);
    grid_free(f64, 0);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);
    grid_writer_release(&w);
    CHECK(live_blocks == before);
}

/* Big-endian input is accepted and swapped; the elements need not be aligned. */
static void test_typed_big_endian(void) {
    grid_reader r;
    unsigned char *copy;
    size_t n;
    double *f64;
    float *f32;
    uint16_t *u16;
    int32_t *i32;
    int64_t *i64, iv;
    uint8_t *u8;

    CHECK(args_from_hex(&r, "85 d852 48 3ff8000000000000 d851 44 3fc00000 d841 42 1234"
                            "d84a 44 fffffffe d84b 48 fffffffffffffffe",
                        &copy) == GRID_OK);
    CHECK(grid_read_f64_array(&r, &f64, &n) == GRID_OK && n == 1 && f64[0] == 1.5);
    grid_free(f64, 0);
    CHECK(grid_read_f32_array(&r, &f32, &n) == GRID_OK && n == 1 && f32[0] == 1.5f);
    grid_free(f32, 0);
    CHECK(grid_read_u16_array(&r, &u16, &n) == GRID_OK && n == 1 && u16[0] == 0x1234);
    grid_free(u16, 0);
    CHECK(grid_read_i32_array(&r, &i32, &n) == GRID_OK && n == 1 && i32[0] == -2);
    grid_free(i32, 0);
    CHECK(grid_read_i64_array(&r, &i64, &n) == GRID_OK && n == 1 && i64[0] == -2);
    grid_free(i64, 0);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);

    /* Element by element too: [sint32 BE [-2, 3]] */
    CHECK(args_from_hex(&r, "81 d84a 48 fffffffe 00000003", &copy) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 2);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == -2);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 3);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);

    /* uint8 "clamped" is uint8 */
    CHECK(args_from_hex(&r, "81 d844 42 0708", &copy) == GRID_OK);
    CHECK(grid_read_u8_array(&r, &u8, &n) == GRID_OK && n == 2 && u8[0] == 7 && u8[1] == 8);
    grid_free(u8, 0);
    free(copy);
}

/* Typed arrays with a bad length, unsupported tags: refused up front, named. */
static void test_typed_malformed(void) {
    static const struct {
        const char *hex;
        grid_status want;
        const char *message;
    } cases[] = {
        {"81 d856 43 010203", GRID_E_MALFORMED,
         "argument 1: malformed CBOR: a float64 typed array of 3 bytes: not a multiple of 8"},
        {"81 d84e 45 0102030405", GRID_E_MALFORMED,
         "argument 1: malformed CBOR: a sint32 typed array of 5 bytes: not a multiple of 4"},
        {"81 d854 42 003c", GRID_E_UNSUPPORTED,
         "argument 1: CBOR tag 84 (float16 typed array) is not supported (the only tags are "
         "typed arrays, 64..86)"},
        {"81 d850 40", GRID_E_UNSUPPORTED, "argument 1: CBOR tag 80 (float16 typed array)"},
        {"81 d853 40", GRID_E_UNSUPPORTED, "argument 1: CBOR tag 83 (float128 typed array)"},
        {"81 d857 40", GRID_E_UNSUPPORTED, "argument 1: CBOR tag 87 (float128 typed array)"},
        {"81 d84c 40", GRID_E_UNSUPPORTED, "argument 1: CBOR tag 76 is not supported"},
        {"81 c1 01", GRID_E_UNSUPPORTED, "argument 1: CBOR tag 1 is not supported"},
        {"81 db 0000000100000000 40", GRID_E_UNSUPPORTED,
         "argument 1: CBOR tag 4294967296 is not supported"},
        {"81 d856 80", GRID_E_MALFORMED,
         "argument 1: malformed CBOR: tag 86 (float64 typed array) must hold a byte string, "
         "got array"},
        {"81 d856 5f 40 ff", GRID_E_UNSUPPORTED, "argument 1: indefinite-length CBOR"},
        {"81 d856 48 0102", GRID_E_MALFORMED, "argument 1: malformed CBOR: truncated"},
        {"81 d856", GRID_E_MALFORMED, "argument 1: malformed CBOR: truncated"},
        {"82 a1 01 d856 41 00 00", GRID_E_MALFORMED, "argument 1: malformed CBOR: a float64"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grid_reader r;
        unsigned char *copy;
        grid_status got = args_from_hex(&r, cases[i].hex, &copy);
        if (got != cases[i].want || strncmp(grid_reader_message(&r), cases[i].message,
                                            strlen(cases[i].message)) != 0)
            fprintf(stderr, "\"%s\": got %s (%s)\n", cases[i].hex, grid_status_str(got),
                    grid_reader_message(&r));
        CHECK(got == cases[i].want);
        CHECK(strncmp(grid_reader_message(&r), cases[i].message, strlen(cases[i].message)) == 0);
        free(copy);
    }

    /* Every strict prefix of arguments holding typed arrays is refused. */
    {
        grid_writer w;
        size_t cut;
        grid_writer_init(&w);
        grid_write_array(&w, 2);
        grid_write_f64_array(&w, (const double[]){1, 2, 3}, 3);
        grid_write_u16_array(&w, (const uint16_t[]){4}, 1);
        for (cut = 0; cut < w.len; cut++) {
            grid_reader r;
            unsigned char *copy = heap_copy(w.buf, cut);
            CHECK(grid_args_begin(&r, copy, cut) == GRID_E_MALFORMED);
            free(copy);
        }
        grid_writer_release(&w);
    }
}

/* Plain arrays and typed arrays of another type convert element by element, with
 * the reader's range and type checks naming the item. */
static void test_typed_conversions(void) {
    long before = live_blocks;
    grid_reader r;
    unsigned char *copy;
    size_t n;
    double *f64;
    float *f32;
    int32_t *i32;
    int64_t *i64;
    uint8_t *u8;
    uint64_t *u64;

    /* [1, 1.5 (half), 2.0] */
    CHECK(args_from_hex(&r, "81 83 01 f93e00 fb4000000000000000", &copy) == GRID_OK);
    CHECK(grid_read_f64_array(&r, &f64, &n) == GRID_OK && n == 3);
    CHECK(f64[0] == 1.0 && f64[1] == 1.5 && f64[2] == 2.0);
    grid_free(f64, 0);
    free(copy);

    CHECK(args_from_hex(&r, "81 82 01 fb3ff8000000000000", &copy) == GRID_OK);
    CHECK(grid_read_f32_array(&r, &f32, &n) == GRID_OK && n == 2 && f32[1] == 1.5f);
    grid_free(f32, 0);
    free(copy);

    CHECK(args_from_hex(&r, "81 83 3a7fffffff 00 1a7fffffff", &copy) == GRID_OK);
    CHECK(grid_read_i32_array(&r, &i32, &n) == GRID_OK && n == 3);
    CHECK(i32[0] == INT32_MIN && i32[1] == 0 && i32[2] == INT32_MAX);
    grid_free(i32, 0);
    free(copy);

    CHECK(args_from_hex(&r, "81 82 01 1a80000000", &copy) == GRID_OK);
    CHECK(grid_read_i32_array(&r, &i32, &n) == GRID_E_RANGE);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 2: integer out of int32 range");
    free(copy);

    CHECK(args_from_hex(&r, "81 82 01 3a80000000", &copy) == GRID_OK);
    CHECK(grid_read_i32_array(&r, &i32, &n) == GRID_E_RANGE);
    free(copy);

    CHECK(args_from_hex(&r, "81 82 01 20", &copy) == GRID_OK);
    CHECK(grid_read_u8_array(&r, &u8, &n) == GRID_E_RANGE);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 2: integer out of uint8 range");
    free(copy);

    CHECK(args_from_hex(&r, "81 81 1bffffffffffffffff", &copy) == GRID_OK);
    CHECK(grid_read_u64_array(&r, &u64, &n) == GRID_OK && n == 1 && u64[0] == UINT64_MAX);
    grid_free(u64, 0);
    free(copy);

    CHECK(args_from_hex(&r, "81 82 01 f93e00", &copy) == GRID_OK);
    CHECK(grid_read_i64_array(&r, &i64, &n) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 2: expected integer, got float");
    free(copy);

    CHECK(args_from_hex(&r, "82 01 6178", &copy) == GRID_OK);
    CHECK(grid_read_skip(&r) == GRID_OK);
    CHECK(grid_read_f64_array(&r, &f64, &n) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 2: expected array of numbers, got string");
    free(copy);

    /* sint32 [1, -2] read as doubles */
    CHECK(args_from_hex(&r, "81 d84e 48 01000000 feffffff", &copy) == GRID_OK);
    CHECK(grid_read_f64_array(&r, &f64, &n) == GRID_OK && n == 2);
    CHECK(f64[0] == 1.0 && f64[1] == -2.0);
    grid_free(f64, 0);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);

    /* sint64 [1, 300] read as uint8 */
    CHECK(args_from_hex(&r, "81 d84f 50 0100000000000000 2c01000000000000", &copy) == GRID_OK);
    CHECK(grid_read_u8_array(&r, &u8, &n) == GRID_E_RANGE);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 2: integer out of uint8 range");
    free(copy);

    /* float64 [1.0] read as int32 */
    CHECK(args_from_hex(&r, "81 d856 48 000000000000f03f", &copy) == GRID_OK);
    CHECK(grid_read_i32_array(&r, &i32, &n) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 1: expected integer, got float");
    free(copy);
    CHECK(live_blocks == before);
}

/* Code written for plain arrays reads typed arrays unchanged. */
static void test_typed_read_as_plain(void) {
    grid_reader r;
    unsigned char *copy;
    size_t n;
    int64_t iv;
    double dv;
    const char *text;

    /* [float64 [1.5, -2], sint32 [7, 8], 5] */
    CHECK(args_from_hex(&r, "83 d856 50 000000000000f83f 00000000000000c0"
                            "d84e 48 07000000 08000000 05",
                        &copy) == GRID_OK);
    CHECK(grid_peek(&r) == GRID_TYPE_ARRAY);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 2);
    CHECK(grid_peek(&r) == GRID_TYPE_FLOAT);
    CHECK(grid_read_double(&r, &dv) == GRID_OK && dv == 1.5);
    CHECK(grid_read_double(&r, &dv) == GRID_OK && dv == -2.0);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 2);
    CHECK(grid_peek(&r) == GRID_TYPE_INT);
    CHECK(grid_read_skip(&r) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 8);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 5);
    CHECK(grid_peek(&r) == GRID_TYPE_NONE);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);

    /* wrong types and unread items name the item */
    CHECK(args_from_hex(&r, "82 05 d84e 48 07000000 08000000", &copy) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 7);
    CHECK(grid_read_text(&r, &text, &n) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 2, item 2: expected string, got integer");
    free(copy);
    CHECK(args_from_hex(&r, "81 d84e 48 07000000 08000000", &copy) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK);
    CHECK(grid_reader_end(&r) == GRID_E_COUNT);
    CHECK_STR(grid_reader_message(&r), "argument 1, item 1: 2 values left unread from here");
    free(copy);
    /* expecting a map */
    CHECK(args_from_hex(&r, "81 d84e 40", &copy) == GRID_OK);
    CHECK(grid_read_map(&r, &n) == GRID_E_TYPE);
    CHECK_STR(grid_reader_message(&r), "argument 1: expected map, got sint32 typed array");
    free(copy);
    /* skipped whole, and empty */
    CHECK(args_from_hex(&r, "82 d84e 44 07000000 d856 40", &copy) == GRID_OK);
    CHECK(grid_read_skip(&r) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK && n == 0);
    CHECK(grid_reader_end(&r) == GRID_OK);
    free(copy);
    /* uint64 beyond int64 reads as a double, not as an int */
    CHECK(args_from_hex(&r, "81 d847 48 ffffffffffffffff", &copy) == GRID_OK);
    CHECK(grid_read_array(&r, &n) == GRID_OK);
    CHECK(grid_read_int(&r, &iv) == GRID_E_RANGE);
    free(copy);
    /* a namespace-style single value */
    {
        unsigned char buf[8];
        unsigned char *v;
        unhex("d845 44 0100 0200", buf, sizeof buf);
        v = heap_copy(buf, 7);
        CHECK(grid_value_begin(&r, v, 7) == GRID_OK);
        CHECK(grid_read_array(&r, &n) == GRID_OK && n == 2);
        CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 1);
        CHECK(grid_read_int(&r, &iv) == GRID_OK && iv == 2);
        CHECK(grid_reader_end(&r) == GRID_OK);
        free(v);
    }
}

/* A typed-array function, as guest.c's sum_f64 is written. */
GRID_EXPORT(sum_f64, args) {
    double *xs, total = 0;
    size_t n, i;
    if (grid_args_expect(args, 1) || grid_read_f64_array(args, &xs, &n))
        return grid_bad_arguments_from(args);
    for (i = 0; i < n; i++) total += xs[i];
    grid_free(xs, 0);
    return grid_ok_double(total);
}

/* What a guest function looks like, run natively through its export wrapper. */
GRID_EXPORT(add, args) {
    int64_t a, b;
    if (grid_args_expect(args, 2) || grid_read_int(args, &a) || grid_read_int(args, &b))
        return grid_bad_arguments_from(args);
    return grid_ok_int(a + b);
}

static int64_t call(int64_t (*fn)(uint8_t *, size_t), const char *hex) {
    unsigned char buf[64];
    size_t n = unhex(hex, buf, sizeof buf);
    uint8_t *in = grid_alloc(n); /* as the engine does */
    memcpy(in, buf, n);
    return fn(in, n);
}

static void test_export_wrapper(void) {
    long before = live_blocks;
    CHECK(result_is(call(grid_export_add, "82 02 03"), "a1626f6b05"));
    /* {"bad_arguments": "expected 2 arguments, got 1"} */
    CHECK(result_is(call(grid_export_add, "81 02"),
                    "a16d6261645f617267756d656e7473 78 1b"
                    "6578706563746564203220617267756d656e74732c20676f742031"));
    CHECK(live_blocks == before); /* the wrapper freed the arguments */
    /* 1.5 + -2 + 4 = 3.5, from a typed array and from a plain one */
    CHECK(result_is(call(grid_export_sum_f64, "81 d856 58 18 000000000000f83f "
                                              "00000000000000c0 0000000000001040"),
                    "a1626f6b fb400c000000000000"));
    CHECK(result_is(call(grid_export_sum_f64, "81 83 f93e00 21 04"),
                    "a1626f6b fb400c000000000000"));
    CHECK(live_blocks == before);
    grid_typed_arrays(); /* the marker exists and does nothing */
    CHECK(grid_alloc(0) != NULL);
}

int main(void) {
    test_writer_encodings();
    test_envelopes();
    test_writer_misuse();
    test_round_trip();
    test_read_double_forms();
    test_argument_errors();
    test_malformed();
    test_truncations();
    test_random_bytes();
    test_namespace();
    test_typed_encodings();
    test_typed_round_trip();
    test_typed_big_endian();
    test_typed_malformed();
    test_typed_conversions();
    test_typed_read_as_plain();
    test_export_wrapper();
    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("grid.h: all %d checks passed\n", checks);
    return 0;
}
