/* grid.h: write Grid guest functions in C.
 *
 * What it is: a single-header library implementing the Grid guest ABI
 * (guest-sdk/ABI.md) for C compiled to wasm32-wasi: the `grid_alloc` /
 * `grid_free` exports and the `grid_typed_arrays` marker, a macro that exports a
 * CBOR-ABI function, a bounds-checked CBOR reader for the arguments, a CBOR writer
 * for the result envelope, arrays of numbers in and out with one memcpy (RFC 8746
 * typed arrays), and wrappers over the `grid` host imports (namespace, panic).
 *
 * Why it exists: so a C guest needs no CBOR library and no knowledge of pointer
 * packing; it reads typed arguments and returns `grid_ok_int(...)`.
 *
 * What it must not do: read outside the bytes it was given (malformed input is an
 * error code, never a crash), allocate a result the engine cannot free with
 * `grid_free`, or accept CBOR outside Grid's data model (tags other than typed
 * arrays, indefinite lengths, `undefined`, simple values are refused).
 *
 * ---------------------------------------------------------------------------
 * Usage (stb style). Every file may include grid.h for the declarations; exactly
 * ONE .c file defines GRID_IMPLEMENTATION before including it, which compiles the
 * library and the `grid_alloc` / `grid_free` / `grid_typed_arrays` exports. Needs
 * GCC or Clang (GNU attributes) and a libc (wasi-libc: malloc, snprintf, strlen).
 *
 *     // square.c: clang --target=wasm32-wasi -O2 -mexec-model=reactor
 *     //             -I guest-sdk/c square.c -o square.wasm
 *     #define GRID_IMPLEMENTATION
 *     #include "grid.h"
 *
 *     // square(x: int) -> int, called by the engine through export "grid:square"
 *     GRID_EXPORT(square, args) {
 *         int64_t x;
 *         if (grid_args_expect(args, 1) || grid_read_int(args, &x))
 *             return grid_bad_arguments_from(args); // "argument 1: expected integer, got string"
 *         if (x > 3037000499 || x < -3037000499)
 *             return grid_err("square overflows a 64-bit integer"); // {"err": ...}
 *         return grid_ok_int(x * x);                                // {"ok": x*x}
 *     }
 *
 *     // hits(page: string) -> int: counts calls in the engine's namespace
 *     GRID_EXPORT(hits, args) {
 *         char *page;
 *         int64_t n = 0;
 *         if (grid_args_expect(args, 1) || grid_read_cstr(args, &page))
 *             return grid_bad_arguments_from(args);
 *         grid_ns_get_int(page, &n);           // stays 0 if there is no entry yet
 *         grid_ns_set_int(page, n + 1);
 *         grid_free(page, 0);
 *         return grid_ok_int(n + 1);
 *     }
 *
 *     // sum(xs: array of numbers) -> float: a nested read, a result built by hand
 *     GRID_EXPORT(sum, args) {
 *         size_t n;
 *         double total = 0, x;
 *         if (grid_args_expect(args, 1) || grid_read_array(args, &n))
 *             return grid_bad_arguments_from(args);
 *         for (size_t i = 0; i < n; i++) {
 *             // on a string: "argument 1, item 3: expected number, got string"
 *             if (grid_read_double(args, &x)) return grid_bad_arguments_from(args);
 *             total += x;
 *         }
 *         grid_writer w;
 *         grid_writer_begin_ok(&w);              // same as return grid_ok_double(total)
 *         grid_write_double(&w, total);
 *         return grid_writer_finish(&w);
 *     }
 *
 *     // A plain numeric export needs no SDK at all, only an export name.
 *     // (Mind that signed overflow is undefined in C; guest.c's cube wraps.)
 *     GRID_EXPORT_AS("cube") int32_t cube(int32_t x) { return x * x * x; }
 *
 * ---------------------------------------------------------------------------
 * Reading arguments. GRID_EXPORT gives the body a `grid_reader *` positioned on the
 * arguments array. Reads are sequential: each grid_read_* consumes one value and
 * returns GRID_OK or an error code. Errors are sticky: after the first one, every
 * read returns it again, so several reads can be chained with `||` and checked
 * once. grid_reader_message() (used by grid_bad_arguments_from) names the position
 * of the failure, counted from 1: "argument 2", "argument 1, item 3",
 * "argument 1, map key 2", "argument 1, map value 2".
 *
 * grid_read_array / grid_read_map read a container's header and return its size;
 * the following reads then walk its items (a map's items alternate key, value) and
 * continue with the next argument once all items are read. Reading text and bytes
 * does not copy: the pointer is into the argument buffer, valid until the exported
 * function returns. Text is not NUL-terminated; grid_read_cstr makes a
 * NUL-terminated copy.
 *
 * Arrays of numbers (typed arrays). Including grid.h exports `grid_typed_arrays`,
 * which tells the engine this guest understands RFC 8746 typed arrays (ABI.md
 * section 2), so an array of numbers may arrive as one: a tag and a byte string
 * of little-endian elements. The reader hides the difference: grid_peek reports
 * a typed array as GRID_TYPE_ARRAY, grid_read_array opens it, and grid_read_int /
 * grid_read_double read its elements. For speed, grid_read_f64_array and its
 * siblings (one per element type: u8 i8 u16 i16 u32 i32 u64 i64 f32 f64) read a
 * whole array into a fresh buffer, freed with grid_free(*out, 0): a typed array
 * of exactly that type is one memcpy; a plain array, or a typed array of another
 * type, converts element by element (integers must fit the C type, floats are
 * refused for integer types, integers are accepted for float types). The buffer
 * is a copy, not a view into the arguments, because the elements there need not
 * be aligned for their type. grid_write_f64_array and siblings write a typed
 * array with one memcpy; grid_ok_f64_array and siblings return one as the result.
 *
 *     // sum_f64(xs: array of numbers) -> float
 *     GRID_EXPORT(sum_f64, args) {
 *         double *xs, total = 0;
 *         size_t n;
 *         if (grid_args_expect(args, 1) || grid_read_f64_array(args, &xs, &n))
 *             return grid_bad_arguments_from(args);
 *         for (size_t i = 0; i < n; i++) total += xs[i];
 *         grid_free(xs, 0);
 *         return grid_ok_double(total);
 *     }
 *
 * Writing results. Every grid_ok_* / grid_err / grid_bad_arguments returns the
 * packed (ptr << 32) | len the export must return. For composite results, begin a
 * grid_writer with grid_writer_begin_ok (or _err), write exactly one value (arrays
 * and maps: the header with its size, then that many values, keys and values
 * alternating for maps) and return grid_writer_finish(). Writer errors are sticky
 * too; a result that is incomplete, overfull, not valid UTF-8, or out of memory
 * makes grid_writer_finish end the task with grid_panic and a message saying why:
 * that is a bug in the guest, not in its input.
 *
 * Memory. Everything the library hands to the caller to own (grid_read_cstr,
 * grid_ns_get_text, grid_ns_get_cbor) is released with grid_free(ptr, 0). The
 * allocator is malloc/realloc/free unless the implementation file defines all of
 * GRID_MALLOC(n), GRID_REALLOC(p, n) and GRID_FREE(p) before including grid.h.
 * Each task runs in a fresh instance, so leaks die with it, but the library frees
 * what it allocates.
 *
 * Native builds (unit tests of guest code on the build machine): without
 * __wasm__, GRID_EXPORT_AS expands to nothing and the four imports
 * grid_ns_get_raw, grid_ns_set_raw, grid_ns_del_raw and grid_panic_raw are plain
 * extern functions the test must define. Packed pointers are 32-bit, so a native
 * test that round-trips them must allocate below 4 GiB (guest-sdk/c/test does).
 */
#ifndef GRID_H
#define GRID_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of arrays and maps the reader and writer track (the arguments
 * array itself counts as one level). Skipping a value has no depth limit. It sets
 * the size of grid_reader and grid_writer: define it alike in every file. */
#ifndef GRID_MAX_DEPTH
#define GRID_MAX_DEPTH 16
#endif

/* Size of the buffer for a reader's error message, including the NUL. */
#ifndef GRID_MESSAGE_MAX
#define GRID_MESSAGE_MAX 160
#endif

/* ---- exports and imports ------------------------------------------------ */

#if defined(__wasm__)
/* Exports the function that follows under the wasm export name `name`. */
#define GRID_EXPORT_AS(name) __attribute__((export_name(name)))
#define GRID_IMPORT_(name) __attribute__((import_module("grid"), import_name(name)))
#else
#define GRID_EXPORT_AS(name)
#define GRID_IMPORT_(name)
#endif

/* Defines the CBOR-ABI function `name`, exported as "grid:name". The body that
 * follows receives `grid_reader *args_var` on the arguments array and returns
 * an int64_t made by grid_ok_*, grid_err*, grid_bad_arguments* or
 * grid_writer_finish. The arguments buffer is freed after the body returns. C
 * symbols: grid_export_NAME (the export) and grid_fn_NAME (the body). */
#define GRID_EXPORT(name, args_var)                                                  \
    static int64_t grid_fn_##name(grid_reader *args_var);                            \
    GRID_EXPORT_AS("grid:" #name) int64_t grid_export_##name(uint8_t *grid_in_,      \
                                                              size_t grid_in_len_); \
    int64_t grid_export_##name(uint8_t *grid_in_, size_t grid_in_len_) {             \
        grid_reader grid_args_;                                                      \
        int64_t grid_out_;                                                           \
        grid_args_begin(&grid_args_, grid_in_, grid_in_len_);                        \
        grid_out_ = grid_fn_##name(&grid_args_);                                     \
        grid_free(grid_in_, grid_in_len_);                                           \
        return grid_out_;                                                            \
    }                                                                                \
    static int64_t grid_fn_##name(grid_reader *args_var)

/* The ABI's memory exports (defined with GRID_IMPLEMENTATION). grid_alloc returns
 * `len` fresh bytes or NULL; grid_free releases what grid_alloc, a function result
 * or this library returned (len is ignored, NULL is fine). */
void *grid_alloc(size_t len);
void grid_free(void *ptr, size_t len);
/* The marker export of ABI.md section 2, "Typed arrays": never called. */
void grid_typed_arrays(void);

/* The raw host imports of ABI.md section 4; prefer the wrappers below. */
GRID_IMPORT_("ns_get") int64_t grid_ns_get_raw(const void *name, size_t name_len);
GRID_IMPORT_("ns_set")
int32_t grid_ns_set_raw(const void *name, size_t name_len, const void *val, size_t val_len);
GRID_IMPORT_("ns_del") int32_t grid_ns_del_raw(const void *name, size_t name_len);
GRID_IMPORT_("panic")
__attribute__((noreturn)) void grid_panic_raw(const void *msg, size_t msg_len);

/* Packs a location as a CBOR-ABI function returns it: (ptr << 32) | len. */
static inline int64_t grid_pack(const void *ptr, size_t len) {
    return (int64_t)(((uint64_t)(uint32_t)(uintptr_t)ptr << 32) | (uint64_t)(uint32_t)len);
}

/* ---- status codes ------------------------------------------------------- */

typedef enum grid_status {
    GRID_OK = 0,
    GRID_E_TYPE,        /* the value has another type than the one asked for */
    GRID_E_RANGE,       /* the value does not fit the C type (int64, C string) */
    GRID_E_MISSING,     /* no value left to read: fewer arguments than read */
    GRID_E_COUNT,       /* wrong number of arguments, unread values, or (writer) */
                        /* more or fewer values than an array or map declared */
    GRID_E_MALFORMED,   /* not well-formed CBOR: truncated, reserved encodings, */
                        /* trailing bytes, text that is not UTF-8 */
    GRID_E_UNSUPPORTED, /* CBOR outside Grid's data model (tags other than typed */
                        /* arrays, indefinite lengths, undefined, simple values, */
                        /* float16 typed arrays) or nested past GRID_MAX_DEPTH */
    GRID_E_ABSENT,      /* namespace: no entry under that name */
    GRID_E_NOMEM        /* an allocation failed */
} grid_status;

/* A short constant description of a status, e.g. "wrong type". */
const char *grid_status_str(grid_status status);

/* ---- reading CBOR ------------------------------------------------------- */

/* The type of the next value, as grid_peek reports it. */
typedef enum grid_type {
    GRID_TYPE_NONE = 0, /* nothing left to read, or the reader has failed */
    GRID_TYPE_NULL,
    GRID_TYPE_BOOL,
    GRID_TYPE_INT,
    GRID_TYPE_FLOAT,
    GRID_TYPE_TEXT,
    GRID_TYPE_BYTES,
    GRID_TYPE_ARRAY, /* a plain array or a typed array (of numbers) */
    GRID_TYPE_MAP,
    GRID_TYPE_INVALID /* malformed or unsupported: reading it fails */
} grid_type;

/* One open container while reading or writing. */
typedef struct grid_frame {
    size_t count; /* values in the container (a map of n entries holds 2n) */
    size_t next;  /* index of the next value to read or write */
    int kind;     /* internal: arguments, single value, array, map or typed array */
    int elem;     /* internal, typed arrays: element type and byte order */
    size_t data;  /* internal, typed arrays: offset of the first element */
} grid_frame;

/* A cursor over CBOR bytes it does not own. Treat the fields as private. */
typedef struct grid_reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    unsigned depth;
    grid_frame frames[GRID_MAX_DEPTH];
    grid_status status;
    char message[GRID_MESSAGE_MAX];
} grid_reader;

/* Starts reading a CBOR array of arguments, checking first that all of buf is one
 * well-formed array of Grid values. On failure (not an array, malformed, trailing
 * bytes) the reader is failed and every read returns the error. */
grid_status grid_args_begin(grid_reader *r, const void *buf, size_t len);
/* The same for bytes that must hold exactly one value (e.g. a namespace entry). */
grid_status grid_value_begin(grid_reader *r, const void *buf, size_t len);
/* The number of arguments (0 when grid_args_begin failed). */
size_t grid_args_count(const grid_reader *r);
/* Fails with GRID_E_COUNT ("expected 2 arguments, got 3") unless there are n. */
grid_status grid_args_expect(grid_reader *r, size_t n);

grid_status grid_read_int(grid_reader *r, int64_t *out);   /* integers in int64 range */
grid_status grid_read_double(grid_reader *r, double *out); /* floats and integers */
grid_status grid_read_bool(grid_reader *r, bool *out);
grid_status grid_read_null(grid_reader *r);
/* Text without copying: *len bytes of UTF-8 at *ptr, not NUL-terminated. */
grid_status grid_read_text(grid_reader *r, const char **ptr, size_t *len);
/* A NUL-terminated copy of a text value, freed with grid_free(*out, 0). Text with a
 * NUL byte inside fails with GRID_E_RANGE rather than being cut short. */
grid_status grid_read_cstr(grid_reader *r, char **out);
grid_status grid_read_bytes(grid_reader *r, const uint8_t **ptr, size_t *len);
/* Container headers: the next *count (array) or 2 * *entries (map) reads are its items.
 * A typed array opens as an array whose items are its numbers. */
grid_status grid_read_array(grid_reader *r, size_t *count);
grid_status grid_read_map(grid_reader *r, size_t *entries);
/* Skips one value of any type, nested containers included. */
grid_status grid_read_skip(grid_reader *r);
/* An array of numbers (typed or plain) as *count elements in a fresh buffer *out,
 * freed with grid_free(*out, 0); see "Arrays of numbers" above. On failure *out is
 * left alone and nothing needs freeing. Messages name the item: "argument 1,
 * item 3: integer out of int32 range". */
grid_status grid_read_u8_array(grid_reader *r, uint8_t **out, size_t *count);
grid_status grid_read_i8_array(grid_reader *r, int8_t **out, size_t *count);
grid_status grid_read_u16_array(grid_reader *r, uint16_t **out, size_t *count);
grid_status grid_read_i16_array(grid_reader *r, int16_t **out, size_t *count);
grid_status grid_read_u32_array(grid_reader *r, uint32_t **out, size_t *count);
grid_status grid_read_i32_array(grid_reader *r, int32_t **out, size_t *count);
grid_status grid_read_u64_array(grid_reader *r, uint64_t **out, size_t *count);
grid_status grid_read_i64_array(grid_reader *r, int64_t **out, size_t *count);
grid_status grid_read_f32_array(grid_reader *r, float **out, size_t *count);
grid_status grid_read_f64_array(grid_reader *r, double **out, size_t *count);
/* The type of the next value, without consuming it. */
grid_type grid_peek(grid_reader *r);
/* Checks that every value was read and no bytes follow: GRID_E_COUNT
 * ("expected 1 argument, got 2") or GRID_E_MALFORMED otherwise. */
grid_status grid_reader_end(grid_reader *r);
/* The first error (GRID_OK if none) and a message naming where it happened,
 * e.g. "argument 2: expected integer, got string" ("" if none). */
grid_status grid_reader_status(const grid_reader *r);
const char *grid_reader_message(const grid_reader *r);

/* ---- writing CBOR ------------------------------------------------------- */

/* A growing CBOR buffer that checks it holds exactly one complete value. After
 * grid_writer_done returns GRID_OK, buf[0..len) is that value. Treat the other
 * fields as private. */
typedef struct grid_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    unsigned depth;
    grid_frame frames[GRID_MAX_DEPTH];
    grid_status status;
    const char *error; /* constant text saying why status is not GRID_OK */
} grid_writer;

/* Starts a writer for one bare value (e.g. for grid_ns_set_cbor). */
void grid_writer_init(grid_writer *w);
/* Starts a writer for a result envelope: the one value written next becomes the
 * value of {"ok": ...}, {"err": ...} or {"bad_arguments": ...}. */
void grid_writer_begin_ok(grid_writer *w);
void grid_writer_begin_err(grid_writer *w);
void grid_writer_begin_bad_arguments(grid_writer *w);

grid_status grid_write_int(grid_writer *w, int64_t v);
grid_status grid_write_double(grid_writer *w, double v);
grid_status grid_write_bool(grid_writer *w, bool v);
grid_status grid_write_null(grid_writer *w);
grid_status grid_write_text(grid_writer *w, const char *s, size_t len); /* must be UTF-8 */
grid_status grid_write_str(grid_writer *w, const char *s); /* NUL-terminated UTF-8 */
grid_status grid_write_bytes(grid_writer *w, const void *p, size_t len);
/* Container headers: then write exactly count values (map: entries keys and values). */
grid_status grid_write_array(grid_writer *w, size_t count);
grid_status grid_write_map(grid_writer *w, size_t entries);
/* n numbers as one typed array (one value): its tag, a byte string header and the
 * elements, little-endian, copied in one go. */
grid_status grid_write_u8_array(grid_writer *w, const uint8_t *p, size_t n);
grid_status grid_write_i8_array(grid_writer *w, const int8_t *p, size_t n);
grid_status grid_write_u16_array(grid_writer *w, const uint16_t *p, size_t n);
grid_status grid_write_i16_array(grid_writer *w, const int16_t *p, size_t n);
grid_status grid_write_u32_array(grid_writer *w, const uint32_t *p, size_t n);
grid_status grid_write_i32_array(grid_writer *w, const int32_t *p, size_t n);
grid_status grid_write_u64_array(grid_writer *w, const uint64_t *p, size_t n);
grid_status grid_write_i64_array(grid_writer *w, const int64_t *p, size_t n);
grid_status grid_write_f32_array(grid_writer *w, const float *p, size_t n);
grid_status grid_write_f64_array(grid_writer *w, const double *p, size_t n);

/* GRID_OK once exactly one complete value has been written. */
grid_status grid_writer_done(grid_writer *w);
/* Frees the buffer (not needed after grid_writer_finish, which hands it over). */
void grid_writer_release(grid_writer *w);
/* Hands the finished envelope to the engine: returns (ptr << 32) | len. If the
 * writer failed or is incomplete, ends the task with grid_panic instead. */
int64_t grid_writer_finish(grid_writer *w);

/* ---- one-call results (return these from a GRID_EXPORT body) ------------ */

int64_t grid_ok_int(int64_t v);
int64_t grid_ok_double(double v);
int64_t grid_ok_bool(bool v);
int64_t grid_ok_null(void);
int64_t grid_ok_text(const char *s, size_t len);
int64_t grid_ok_str(const char *s);
int64_t grid_ok_bytes(const void *p, size_t len);
/* {"ok": typed array of the n numbers at p} */
int64_t grid_ok_u8_array(const uint8_t *p, size_t n);
int64_t grid_ok_i8_array(const int8_t *p, size_t n);
int64_t grid_ok_u16_array(const uint16_t *p, size_t n);
int64_t grid_ok_i16_array(const int16_t *p, size_t n);
int64_t grid_ok_u32_array(const uint32_t *p, size_t n);
int64_t grid_ok_i32_array(const int32_t *p, size_t n);
int64_t grid_ok_u64_array(const uint64_t *p, size_t n);
int64_t grid_ok_i64_array(const int64_t *p, size_t n);
int64_t grid_ok_f32_array(const float *p, size_t n);
int64_t grid_ok_f64_array(const double *p, size_t n);
/* {"err": message}: the task fails with kind guest_error. */
int64_t grid_err(const char *message);
int64_t grid_errf(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* {"bad_arguments": message}: the task fails with kind bad_arguments. */
int64_t grid_bad_arguments(const char *message);
/* {"bad_arguments": grid_reader_message(r)}. */
int64_t grid_bad_arguments_from(const grid_reader *r);

/* ---- namespace and panic (ABI.md section 4) ----------------------------- */

/* Getters return GRID_E_ABSENT when there is no entry (leaving *out alone), or
 * GRID_E_TYPE / GRID_E_RANGE when the entry is not of that type. */
grid_status grid_ns_get_int(const char *name, int64_t *out);
grid_status grid_ns_get_double(const char *name, double *out);
/* A NUL-terminated copy, freed with grid_free(*out, 0). */
grid_status grid_ns_get_text(const char *name, char **out, size_t *len);
/* The raw CBOR value, freed with grid_free(*cbor, 0). */
grid_status grid_ns_get_cbor(const char *name, uint8_t **cbor, size_t *len);

grid_status grid_ns_set_int(const char *name, int64_t v);
grid_status grid_ns_set_double(const char *name, double v);
grid_status grid_ns_set_text(const char *name, const char *s, size_t len);
grid_status grid_ns_set_str(const char *name, const char *s);
/* Stores one CBOR value; GRID_E_MALFORMED if the engine refuses the bytes. */
grid_status grid_ns_set_cbor(const char *name, const void *cbor, size_t len);

/* Removes an entry: true if it was there. */
bool grid_ns_del(const char *name);

/* Ends the task with kind panic and this message. Does not return. */
__attribute__((noreturn)) void grid_panic(const char *message);

#ifdef __cplusplus
}
#endif

#endif /* GRID_H */

/* ========================================================================= */
/* Implementation                                                            */
/* ========================================================================= */

#if defined(GRID_IMPLEMENTATION) && !defined(GRID_IMPLEMENTED)
#define GRID_IMPLEMENTED

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(GRID_MALLOC) && !defined(GRID_REALLOC) && !defined(GRID_FREE)
#define GRID_MALLOC(n) malloc(n)
#define GRID_REALLOC(p, n) realloc(p, n)
#define GRID_FREE(p) free(p)
#elif !defined(GRID_MALLOC) || !defined(GRID_REALLOC) || !defined(GRID_FREE)
#error "grid.h: define all of GRID_MALLOC, GRID_REALLOC and GRID_FREE, or none"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory exports ----------------------------------------------------- */

/* malloc(0) may return NULL, which the ABI reads as failure: ask for one byte. */
GRID_EXPORT_AS("grid_alloc") void *grid_alloc(size_t len) { return GRID_MALLOC(len ? len : 1); }

GRID_EXPORT_AS("grid_free") void grid_free(void *ptr, size_t len) {
    (void)len;
    GRID_FREE(ptr);
}

/* Its presence tells the engine that this reader understands typed arrays
 * (ABI.md section 2); the engine never calls it. */
GRID_EXPORT_AS("grid_typed_arrays") void grid_typed_arrays(void) {}

const char *grid_status_str(grid_status status) {
    switch (status) {
    case GRID_OK: return "ok";
    case GRID_E_TYPE: return "wrong type";
    case GRID_E_RANGE: return "out of range";
    case GRID_E_MISSING: return "missing value";
    case GRID_E_COUNT: return "wrong number of values";
    case GRID_E_MALFORMED: return "malformed CBOR";
    case GRID_E_UNSUPPORTED: return "unsupported CBOR";
    case GRID_E_ABSENT: return "no such namespace entry";
    case GRID_E_NOMEM: return "out of memory";
    }
    return "unknown status";
}

/* ---- CBOR heads and UTF-8 ----------------------------------------------- */

enum { GRID_KIND_ARGS, GRID_KIND_VALUE, GRID_KIND_ARRAY, GRID_KIND_MAP, GRID_KIND_TYPED };

/* The initial byte and argument of one CBOR data item. */
typedef struct grid_head_ {
    unsigned major;  /* major type 0..7 */
    unsigned info;   /* additional information 0..31 */
    uint64_t arg;    /* the argument (length, count, integer or float bits) */
    size_t size;     /* bytes taken by the head */
} grid_head_;

/* ---- typed arrays (RFC 8746) --------------------------------------------- */

/* Element types; GRID_ELEM_BE_ or-ed in marks big-endian input. */
enum {
    GRID_ELEM_U8_, GRID_ELEM_I8_, GRID_ELEM_U16_, GRID_ELEM_I16_, GRID_ELEM_U32_,
    GRID_ELEM_I32_, GRID_ELEM_U64_, GRID_ELEM_I64_, GRID_ELEM_F32_, GRID_ELEM_F64_,
    GRID_ELEM_BE_ = 16
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define GRID_HOST_BE_ 1
#else
#define GRID_HOST_BE_ 0
#endif

/* Per element type, in the order of the enum above. */
static const struct {
    unsigned size;
    uint64_t tag;       /* the little-endian tag, which the writer uses */
    const char *c_name; /* for range errors */
    uint64_t max;       /* integers: the largest value */
} grid_elems_[] = {
    {1, 64, "uint8", UINT8_MAX},   {1, 72, "int8", INT8_MAX},   {2, 69, "uint16", UINT16_MAX},
    {2, 77, "int16", INT16_MAX},   {4, 70, "uint32", UINT32_MAX}, {4, 78, "int32", INT32_MAX},
    {8, 71, "uint64", UINT64_MAX}, {8, 79, "int64", INT64_MAX}, {4, 85, "float", 0},
    {8, 86, "double", 0},
};

/* RFC 8746's names, for messages. */
static const char *const grid_typed_names_[] = {
    "uint8 typed array",  "sint8 typed array",  "uint16 typed array", "sint16 typed array",
    "uint32 typed array", "sint32 typed array", "uint64 typed array", "sint64 typed array",
    "float32 typed array", "float64 typed array",
};

/* The element type (with GRID_ELEM_BE_) of a typed-array tag, or -1 if the tag
 * is not one Grid accepts. */
static int grid_typed_tag_(uint64_t tag) {
    static const signed char elems[] = {
        /* 64 */ GRID_ELEM_U8_, GRID_ELEM_U16_ | GRID_ELEM_BE_, GRID_ELEM_U32_ | GRID_ELEM_BE_,
        /* 67 */ GRID_ELEM_U64_ | GRID_ELEM_BE_, GRID_ELEM_U8_ /* clamped */, GRID_ELEM_U16_,
        /* 70 */ GRID_ELEM_U32_, GRID_ELEM_U64_, GRID_ELEM_I8_, GRID_ELEM_I16_ | GRID_ELEM_BE_,
        /* 74 */ GRID_ELEM_I32_ | GRID_ELEM_BE_, GRID_ELEM_I64_ | GRID_ELEM_BE_, -1 /* reserved */,
        /* 77 */ GRID_ELEM_I16_, GRID_ELEM_I32_, GRID_ELEM_I64_, -1 /* float16 */,
        /* 81 */ GRID_ELEM_F32_ | GRID_ELEM_BE_, GRID_ELEM_F64_ | GRID_ELEM_BE_, -1 /* float128 */,
        /* 84 */ -1 /* float16 */, GRID_ELEM_F32_, GRID_ELEM_F64_,
    };
    if (tag < 64 || tag - 64 >= sizeof elems) return -1;
    return elems[tag - 64];
}

/* Why a tag is refused, naming it, into why[0..n). */
static void grid_tag_refused_(uint64_t tag, char *why, size_t n) {
    const char *what = (tag == 80 || tag == 84)   ? " (float16 typed array)"
                       : (tag == 83 || tag == 87) ? " (float128 typed array)"
                                                  : "";
    snprintf(why, n, "CBOR tag %llu%s is not supported (the only tags are typed arrays, 64..86)",
             (unsigned long long)tag, what);
}

/* Element `size` bytes at p, in the given byte order, as raw bits. */
static uint64_t grid_load_(const uint8_t *p, unsigned size, bool big_endian) {
    uint64_t v = 0;
    unsigned i;
    for (i = 0; i < size; i++) v |= (uint64_t)p[big_endian ? size - 1 - i : i] << (8 * i);
    return v;
}

/* Reverses the bytes of each of the n elements of `size` bytes at p. */
static void grid_swap_(uint8_t *p, size_t n, unsigned size) {
    size_t i;
    unsigned j;
    for (i = 0; i < n; i++, p += size) {
        for (j = 0; j < size / 2; j++) {
            uint8_t t = p[j];
            p[j] = p[size - 1 - j];
            p[size - 1 - j] = t;
        }
    }
}

/* Decodes the head at buf[pos..len). On failure returns the status and sets *why. */
static grid_status grid_head_parse_(const uint8_t *buf, size_t len, size_t pos, grid_head_ *h,
                                    const char **why) {
    size_t extra, i;
    if (pos >= len) {
        *why = "malformed CBOR: truncated";
        return GRID_E_MALFORMED;
    }
    h->major = buf[pos] >> 5;
    h->info = buf[pos] & 0x1f;
    if (h->info < 24) {
        h->arg = h->info;
        h->size = 1;
        return GRID_OK;
    }
    if (h->info <= 27) {
        extra = (size_t)1 << (h->info - 24);
        if (len - pos - 1 < extra) {
            *why = "malformed CBOR: truncated";
            return GRID_E_MALFORMED;
        }
        h->arg = 0;
        for (i = 0; i < extra; i++) h->arg = (h->arg << 8) | buf[pos + 1 + i];
        h->size = 1 + extra;
        return GRID_OK;
    }
    if (h->info == 31 && h->major >= 2 && h->major <= 5) {
        *why = "indefinite-length CBOR is not supported";
        return GRID_E_UNSUPPORTED;
    }
    *why = "malformed CBOR: reserved or misplaced initial byte";
    return GRID_E_MALFORMED;
}

/* The Grid type of a parsed head. */
static grid_type grid_head_type_(const grid_head_ *h) {
    switch (h->major) {
    case 0:
    case 1: return GRID_TYPE_INT;
    case 2: return GRID_TYPE_BYTES;
    case 3: return GRID_TYPE_TEXT;
    case 4: return GRID_TYPE_ARRAY;
    case 5: return GRID_TYPE_MAP;
    case 6: return grid_typed_tag_(h->arg) >= 0 ? GRID_TYPE_ARRAY : GRID_TYPE_INVALID;
    case 7:
        if (h->info == 20 || h->info == 21) return GRID_TYPE_BOOL;
        if (h->info == 22) return GRID_TYPE_NULL;
        if (h->info >= 25 && h->info <= 27) return GRID_TYPE_FLOAT;
        return GRID_TYPE_INVALID;
    default: return GRID_TYPE_INVALID;
    }
}

static const char *grid_head_name_(const grid_head_ *h) {
    if (h->major == 6 && grid_typed_tag_(h->arg) >= 0)
        return grid_typed_names_[grid_typed_tag_(h->arg) & ~GRID_ELEM_BE_];
    switch (grid_head_type_(h)) {
    case GRID_TYPE_NULL: return "null";
    case GRID_TYPE_BOOL: return "bool";
    case GRID_TYPE_INT: return "integer";
    case GRID_TYPE_FLOAT: return "float";
    case GRID_TYPE_TEXT: return "string";
    case GRID_TYPE_BYTES: return "bytes";
    case GRID_TYPE_ARRAY: return "array";
    case GRID_TYPE_MAP: return "map";
    default: break;
    }
    if (h->major == 6) return "a CBOR tag";
    if (h->info == 23) return "undefined";
    return "a CBOR simple value";
}

/* True if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static bool grid_utf8_valid_(const uint8_t *s, size_t len) {
    size_t i = 0, n, k;
    uint32_t c, min;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0) { n = 1; c = b & 0x1f; min = 0x80; }
        else if ((b & 0xf0) == 0xe0) { n = 2; c = b & 0x0f; min = 0x800; }
        else if ((b & 0xf8) == 0xf0) { n = 3; c = b & 0x07; min = 0x10000; }
        else return false;
        if (len - i - 1 < n) return false;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

/* Why a well-formed head is not a Grid value (tags, undefined, simple values). The
 * scanner, which sees every value first, names the tag. */
static const char *grid_head_unsupported_(const grid_head_ *h) {
    if (h->major == 6) return "CBOR tags other than typed arrays are not Grid values";
    if (h->info == 23) return "undefined is not a Grid value";
    return "CBOR simple values are not Grid values";
}

/* Room for a scanner message that names a tag or a length. */
#define GRID_WHY_MAX_ 128

/* Checks the byte string of the typed array whose tag head `tag` ends at *at, and
 * moves *at past it. The tag must be one grid_typed_tag_ accepts. */
static grid_status grid_scan_typed_(const uint8_t *buf, size_t len, size_t *at,
                                    const grid_head_ *tag, char *why) {
    grid_head_ h;
    const char *w;
    int elem = grid_typed_tag_(tag->arg) & ~GRID_ELEM_BE_;
    grid_status s = grid_head_parse_(buf, len, *at, &h, &w);
    if (s != GRID_OK) {
        snprintf(why, GRID_WHY_MAX_, "%s", w);
        return s;
    }
    if (h.major != 2) {
        snprintf(why, GRID_WHY_MAX_,
                 "malformed CBOR: tag %llu (%s) must hold a byte string, got %s",
                 (unsigned long long)tag->arg, grid_typed_names_[elem], grid_head_name_(&h));
        return GRID_E_MALFORMED;
    }
    if (h.arg > len - *at - h.size) {
        snprintf(why, GRID_WHY_MAX_, "malformed CBOR: truncated");
        return GRID_E_MALFORMED;
    }
    if (h.arg % grid_elems_[elem].size != 0) {
        snprintf(why, GRID_WHY_MAX_, "malformed CBOR: a %s of %llu bytes: not a multiple of %u",
                 grid_typed_names_[elem], (unsigned long long)h.arg, grid_elems_[elem].size);
        return GRID_E_MALFORMED;
    }
    *at += h.size + (size_t)h.arg;
    return GRID_OK;
}

/* Checks that buf[*pos..len) starts with one complete Grid value (well-formed,
 * definite lengths, UTF-8 text, no tags but typed arrays) and moves *pos past it;
 * on failure writes why (GRID_WHY_MAX_ bytes). Iterative, so nesting costs no
 * stack; a count is only believed if every value it promises could still take a
 * byte, so hostile counts fail fast. */
static grid_status grid_scan_value_(const uint8_t *buf, size_t len, size_t *pos, char *why) {
    grid_head_ h;
    size_t at = *pos, pending = 1, room;
    const char *w;
    grid_status s;
    while (pending > 0) {
        s = grid_head_parse_(buf, len, at, &h, &w);
        if (s != GRID_OK) {
            snprintf(why, GRID_WHY_MAX_, "%s", w);
            return s;
        }
        if (h.major == 6 && grid_typed_tag_(h.arg) < 0) {
            grid_tag_refused_(h.arg, why, GRID_WHY_MAX_);
            return GRID_E_UNSUPPORTED;
        }
        if (grid_head_type_(&h) == GRID_TYPE_INVALID) {
            snprintf(why, GRID_WHY_MAX_, "%s", grid_head_unsupported_(&h));
            return GRID_E_UNSUPPORTED;
        }
        at += h.size;
        pending--;
        room = len - at;
        if (h.major == 2 || h.major == 3) {
            if (h.arg > room) {
                snprintf(why, GRID_WHY_MAX_, "malformed CBOR: truncated");
                return GRID_E_MALFORMED;
            }
            if (h.major == 3 && !grid_utf8_valid_(buf + at, (size_t)h.arg)) {
                snprintf(why, GRID_WHY_MAX_, "malformed CBOR: text is not UTF-8");
                return GRID_E_MALFORMED;
            }
            at += (size_t)h.arg;
        } else if (h.major == 4 || h.major == 5) {
            if (pending > room || h.arg > (room - pending) / (h.major == 5 ? 2 : 1)) {
                snprintf(why, GRID_WHY_MAX_, "malformed CBOR: truncated");
                return GRID_E_MALFORMED;
            }
            pending += (size_t)h.arg * (h.major == 5 ? 2 : 1);
        } else if (h.major == 6) {
            s = grid_scan_typed_(buf, len, &at, &h, why);
            if (s != GRID_OK) return s;
        }
    }
    *pos = at;
    return GRID_OK;
}

/* IEEE half-precision bits to double, without libm. */
static double grid_half_to_double_(uint16_t h) {
    unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0) {
        v = (double)m / 16777216.0; /* m * 2^-24, exact */
    } else if (e == 31) {
        v = m ? (double)NAN : (double)INFINITY;
    } else {
        uint64_t bits = ((uint64_t)(e - 15 + 1023) << 52) | ((uint64_t)m << 42);
        memcpy(&v, &bits, sizeof v);
    }
    return (h & 0x8000) ? -v : v;
}

/* ---- reader ------------------------------------------------------------- */

/* Appends printf output to r->message at *at, clamping at the end. */
static void grid_msg_append_(grid_reader *r, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void grid_msg_append_(grid_reader *r, size_t *at, const char *fmt, ...) {
    va_list ap;
    int n;
    if (*at >= sizeof r->message - 1) return;
    va_start(ap, fmt);
    n = vsnprintf(r->message + *at, sizeof r->message - *at, fmt, ap);
    va_end(ap);
    if (n > 0) *at += (size_t)n;
    if (*at > sizeof r->message - 1) *at = sizeof r->message - 1;
}

/* Records the first failure, prefixed with the path of the value being read. */
static grid_status grid_reader_fail_(grid_reader *r, grid_status status, bool with_path,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static grid_status grid_reader_fail_(grid_reader *r, grid_status status, bool with_path,
                                     const char *fmt, ...) {
    size_t at = 0;
    unsigned d;
    va_list ap;
    if (r->status != GRID_OK) return r->status;
    r->status = status;
    if (with_path) {
        for (d = 0; d <= r->depth; d++) {
            const grid_frame *f = &r->frames[d];
            /* Outer frames have already started the value that holds us. */
            size_t index = d < r->depth ? f->next - 1 : f->next;
            const char *sep = d ? ", " : "";
            switch (f->kind) {
            case GRID_KIND_ARGS: grid_msg_append_(r, &at, "%sargument %zu", sep, index + 1); break;
            case GRID_KIND_VALUE: grid_msg_append_(r, &at, "%svalue", sep); break;
            case GRID_KIND_ARRAY:
            case GRID_KIND_TYPED: grid_msg_append_(r, &at, "%sitem %zu", sep, index + 1); break;
            default:
                grid_msg_append_(r, &at, "%smap %s %zu", sep, index % 2 ? "value" : "key",
                                 index / 2 + 1);
                break;
            }
        }
        grid_msg_append_(r, &at, ": ");
    }
    if (at < sizeof r->message - 1) {
        va_start(ap, fmt);
        vsnprintf(r->message + at, sizeof r->message - at, fmt, ap);
        va_end(ap);
    }
    return status;
}

static void grid_reader_init_(grid_reader *r, const void *buf, size_t len) {
    r->buf = (const uint8_t *)buf;
    r->len = buf ? len : 0;
    r->pos = 0;
    r->depth = 0;
    r->frames[0].count = 0;
    r->frames[0].next = 0;
    r->frames[0].kind = GRID_KIND_VALUE;
    r->status = GRID_OK;
    r->message[0] = '\0';
}

grid_status grid_args_begin(grid_reader *r, const void *buf, size_t len) {
    grid_head_ h;
    const char *what;
    char why[GRID_WHY_MAX_];
    grid_status s;
    size_t pos;
    uint64_t i;
    grid_reader_init_(r, buf, len);
    r->frames[0].kind = GRID_KIND_ARGS;
    s = grid_head_parse_(r->buf, r->len, 0, &h, &what);
    if (s != GRID_OK) return grid_reader_fail_(r, s, false, "arguments: %s", what);
    if (h.major != 4)
        return grid_reader_fail_(r, GRID_E_TYPE, false,
                                 "arguments: expected an array, got %s", grid_head_name_(&h));
    if (h.arg > r->len - h.size)
        return grid_reader_fail_(r, GRID_E_MALFORMED, false,
                                 "arguments: malformed CBOR: truncated");
    /* Validate everything up front: later reads then fail only on types and ranges,
     * and a function that stops reading early still rejects malformed input. */
    pos = h.size;
    for (i = 0; i < h.arg; i++) {
        s = grid_scan_value_(r->buf, r->len, &pos, why);
        if (s != GRID_OK)
            return grid_reader_fail_(r, s, false, "argument %zu: %s", (size_t)i + 1, why);
    }
    if (pos != r->len)
        return grid_reader_fail_(r, GRID_E_MALFORMED, false,
                                 "arguments: malformed CBOR: %zu byte(s) after the array",
                                 r->len - pos);
    r->pos = h.size;
    r->frames[0].count = (size_t)h.arg;
    return GRID_OK;
}

grid_status grid_value_begin(grid_reader *r, const void *buf, size_t len) {
    size_t pos = 0;
    char why[GRID_WHY_MAX_];
    grid_status s;
    grid_reader_init_(r, buf, len);
    s = grid_scan_value_(r->buf, r->len, &pos, why);
    if (s != GRID_OK) return grid_reader_fail_(r, s, false, "value: %s", why);
    if (pos != r->len)
        return grid_reader_fail_(r, GRID_E_MALFORMED, false,
                                 "value: malformed CBOR: %zu byte(s) after the value",
                                 r->len - pos);
    r->frames[0].count = 1;
    return GRID_OK;
}

size_t grid_args_count(const grid_reader *r) {
    return r->frames[0].kind == GRID_KIND_ARGS ? r->frames[0].count : 0;
}

grid_status grid_args_expect(grid_reader *r, size_t n) {
    if (r->status != GRID_OK) return r->status;
    if (r->frames[0].kind != GRID_KIND_ARGS || r->frames[0].count != n)
        return grid_reader_fail_(r, GRID_E_COUNT, false, "expected %zu argument%s, got %zu", n,
                                 n == 1 ? "" : "s", grid_args_count(r));
    return GRID_OK;
}

/* Leaves containers whose values have all been read. */
static void grid_reader_pop_(grid_reader *r) {
    while (r->depth > 0 && r->frames[r->depth].next == r->frames[r->depth].count) r->depth--;
}

/* The next element of the open typed array, dressed as the head of a CBOR number
 * that takes no bytes, so every grid_read_* reads it as it reads a plain one. */
static void grid_typed_head_(const grid_reader *r, grid_head_ *h) {
    const grid_frame *f = &r->frames[r->depth];
    int elem = f->elem & ~GRID_ELEM_BE_;
    unsigned size = grid_elems_[elem].size;
    uint64_t bits = grid_load_(r->buf + f->data + f->next * size, size,
                               (f->elem & GRID_ELEM_BE_) != 0);
    int64_t v;
    h->size = 0;
    h->info = 27;
    switch (elem) {
    case GRID_ELEM_F32_: h->major = 7; h->info = 26; h->arg = bits; return;
    case GRID_ELEM_F64_: h->major = 7; h->arg = bits; return;
    case GRID_ELEM_I8_: v = (int8_t)bits; break;
    case GRID_ELEM_I16_: v = (int16_t)bits; break;
    case GRID_ELEM_I32_: v = (int32_t)bits; break;
    case GRID_ELEM_I64_: v = (int64_t)bits; break;
    default: h->major = 0; h->arg = bits; return; /* unsigned */
    }
    h->major = v < 0 ? 1 : 0;
    h->arg = v < 0 ? (uint64_t)(-1 - v) : (uint64_t)v;
}

/* Parses the head of the next value without consuming it, leaving finished
 * containers first; fails if no value is left or it is not a Grid value. */
static grid_status grid_reader_head_(grid_reader *r, grid_head_ *h) {
    const char *why;
    grid_status s;
    if (r->status != GRID_OK) return r->status;
    grid_reader_pop_(r);
    if (r->frames[0].next == r->frames[0].count && r->depth == 0) {
        if (r->frames[0].kind == GRID_KIND_ARGS)
            return grid_reader_fail_(r, GRID_E_MISSING, false, "missing argument %zu: got %zu",
                                     r->frames[0].count + 1, r->frames[0].count);
        return grid_reader_fail_(r, GRID_E_MISSING, false, "no value left to read");
    }
    if (r->frames[r->depth].kind == GRID_KIND_TYPED) {
        grid_typed_head_(r, h);
        return GRID_OK;
    }
    s = grid_head_parse_(r->buf, r->len, r->pos, h, &why);
    if (s != GRID_OK) return grid_reader_fail_(r, s, true, "%s", why);
    if (grid_head_type_(h) == GRID_TYPE_INVALID)
        return grid_reader_fail_(r, GRID_E_UNSUPPORTED, true, "%s", grid_head_unsupported_(h));
    return GRID_OK;
}

/* Consumes the value whose head was just parsed, ending at `end`. */
static void grid_reader_advance_(grid_reader *r, size_t end) {
    r->pos = end;
    r->frames[r->depth].next++;
}

static grid_status grid_reader_wrong_type_(grid_reader *r, const grid_head_ *h,
                                           const char *expected) {
    return grid_reader_fail_(r, GRID_E_TYPE, true, "expected %s, got %s", expected,
                             grid_head_name_(h));
}

grid_status grid_read_int(grid_reader *r, int64_t *out) {
    grid_head_ h;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (h.major > 1) return grid_reader_wrong_type_(r, &h, "integer");
    if (h.arg > (uint64_t)INT64_MAX)
        return grid_reader_fail_(r, GRID_E_RANGE, true, "integer out of int64 range");
    *out = h.major == 0 ? (int64_t)h.arg : -1 - (int64_t)h.arg;
    grid_reader_advance_(r, r->pos + h.size);
    return GRID_OK;
}

grid_status grid_read_double(grid_reader *r, double *out) {
    grid_head_ h;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (h.major == 0) {
        *out = (double)h.arg;
    } else if (h.major == 1) {
        *out = -1.0 - (double)h.arg;
    } else if (grid_head_type_(&h) == GRID_TYPE_FLOAT) {
        if (h.info == 25) {
            *out = grid_half_to_double_((uint16_t)h.arg);
        } else if (h.info == 26) {
            uint32_t bits = (uint32_t)h.arg;
            float f;
            memcpy(&f, &bits, sizeof f);
            *out = f;
        } else {
            memcpy(out, &h.arg, sizeof *out);
        }
    } else {
        return grid_reader_wrong_type_(r, &h, "number");
    }
    grid_reader_advance_(r, r->pos + h.size);
    return GRID_OK;
}

grid_status grid_read_bool(grid_reader *r, bool *out) {
    grid_head_ h;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (grid_head_type_(&h) != GRID_TYPE_BOOL) return grid_reader_wrong_type_(r, &h, "bool");
    *out = h.info == 21;
    grid_reader_advance_(r, r->pos + h.size);
    return GRID_OK;
}

grid_status grid_read_null(grid_reader *r) {
    grid_head_ h;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (grid_head_type_(&h) != GRID_TYPE_NULL) return grid_reader_wrong_type_(r, &h, "null");
    grid_reader_advance_(r, r->pos + h.size);
    return GRID_OK;
}

/* Reads a text (major 3) or byte (major 2) string in place. */
static grid_status grid_read_string_(grid_reader *r, unsigned major, const uint8_t **ptr,
                                     size_t *len) {
    grid_head_ h;
    size_t start;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (h.major != major) return grid_reader_wrong_type_(r, &h, major == 3 ? "string" : "bytes");
    start = r->pos + h.size;
    if (h.arg > r->len - start)
        return grid_reader_fail_(r, GRID_E_MALFORMED, true, "malformed CBOR: truncated");
    if (major == 3 && !grid_utf8_valid_(r->buf + start, (size_t)h.arg))
        return grid_reader_fail_(r, GRID_E_MALFORMED, true, "malformed CBOR: text is not UTF-8");
    *ptr = r->buf + start;
    *len = (size_t)h.arg;
    grid_reader_advance_(r, start + (size_t)h.arg);
    return GRID_OK;
}

grid_status grid_read_text(grid_reader *r, const char **ptr, size_t *len) {
    const uint8_t *p;
    grid_status s = grid_read_string_(r, 3, &p, len);
    if (s == GRID_OK) *ptr = (const char *)p;
    return s;
}

grid_status grid_read_cstr(grid_reader *r, char **out) {
    grid_head_ h;
    const uint8_t *p;
    size_t n;
    char *copy;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    /* Check before consuming, so the message points at this value. */
    if (h.major == 3 && h.arg <= r->len - r->pos - h.size &&
        memchr(r->buf + r->pos + h.size, 0, (size_t)h.arg) != NULL)
        return grid_reader_fail_(r, GRID_E_RANGE, true, "string contains a NUL byte");
    s = grid_read_string_(r, 3, &p, &n);
    if (s != GRID_OK) return s;
    copy = (char *)GRID_MALLOC(n + 1);
    if (copy == NULL) {
        r->status = GRID_E_NOMEM;
        snprintf(r->message, sizeof r->message, "out of memory");
        return GRID_E_NOMEM;
    }
    memcpy(copy, p, n);
    copy[n] = '\0';
    *out = copy;
    return GRID_OK;
}

grid_status grid_read_bytes(grid_reader *r, const uint8_t **ptr, size_t *len) {
    return grid_read_string_(r, 2, ptr, len);
}

/* The byte string of the typed array whose tag head `tag` is next: its elements
 * start at *data and number *count. */
static grid_status grid_reader_typed_(grid_reader *r, const grid_head_ *tag, size_t *data,
                                      size_t *count) {
    grid_head_ h;
    const char *why;
    int elem = grid_typed_tag_(tag->arg) & ~GRID_ELEM_BE_;
    /* grid_args_begin / grid_value_begin checked it all; this guards only misuse. */
    grid_status s = grid_head_parse_(r->buf, r->len, r->pos + tag->size, &h, &why);
    if (s != GRID_OK) return grid_reader_fail_(r, s, true, "%s", why);
    *data = r->pos + tag->size + h.size;
    if (h.major != 2 || h.arg > r->len - *data || h.arg % grid_elems_[elem].size != 0)
        return grid_reader_fail_(r, GRID_E_MALFORMED, true, "malformed CBOR: bad %s",
                                 grid_typed_names_[elem]);
    *count = (size_t)h.arg / grid_elems_[elem].size;
    return GRID_OK;
}

/* Opens the typed array whose tag head `tag` is next, as an array of numbers. */
static grid_status grid_read_typed_open_(grid_reader *r, const grid_head_ *tag, size_t *count) {
    size_t data, n;
    unsigned size = grid_elems_[grid_typed_tag_(tag->arg) & ~GRID_ELEM_BE_].size;
    grid_status s = grid_reader_typed_(r, tag, &data, &n);
    if (s != GRID_OK) return s;
    if (n > 0 && r->depth + 1 >= GRID_MAX_DEPTH)
        return grid_reader_fail_(r, GRID_E_UNSUPPORTED, true,
                                 "nested deeper than %d levels", GRID_MAX_DEPTH);
    grid_reader_advance_(r, data + n * size);
    if (n > 0) {
        r->depth++;
        r->frames[r->depth].count = n;
        r->frames[r->depth].next = 0;
        r->frames[r->depth].kind = GRID_KIND_TYPED;
        r->frames[r->depth].elem = grid_typed_tag_(tag->arg);
        r->frames[r->depth].data = data;
    }
    *count = n;
    return GRID_OK;
}

/* Reads an array (major 4, or a typed array) or map (major 5) header and enters it. */
static grid_status grid_read_container_(grid_reader *r, unsigned major, size_t *size) {
    grid_head_ h;
    size_t end, values;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (major == 4 && h.major == 6) return grid_read_typed_open_(r, &h, size);
    if (h.major != major) return grid_reader_wrong_type_(r, &h, major == 4 ? "array" : "map");
    end = r->pos + h.size;
    /* Every value takes at least one byte: a larger count cannot be honest. */
    if (h.arg > (r->len - end) / (major == 5 ? 2 : 1))
        return grid_reader_fail_(r, GRID_E_MALFORMED, true, "malformed CBOR: truncated");
    values = (size_t)h.arg * (major == 5 ? 2 : 1);
    if (values > 0 && r->depth + 1 >= GRID_MAX_DEPTH)
        return grid_reader_fail_(r, GRID_E_UNSUPPORTED, true,
                                 "nested deeper than %d levels", GRID_MAX_DEPTH);
    grid_reader_advance_(r, end);
    if (values > 0) {
        r->depth++;
        r->frames[r->depth].count = values;
        r->frames[r->depth].next = 0;
        r->frames[r->depth].kind = major == 5 ? GRID_KIND_MAP : GRID_KIND_ARRAY;
    }
    *size = (size_t)h.arg;
    return GRID_OK;
}

grid_status grid_read_array(grid_reader *r, size_t *count) {
    return grid_read_container_(r, 4, count);
}

grid_status grid_read_map(grid_reader *r, size_t *entries) {
    return grid_read_container_(r, 5, entries);
}

grid_status grid_read_skip(grid_reader *r) {
    grid_head_ h;
    char why[GRID_WHY_MAX_];
    size_t pos;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (r->frames[r->depth].kind == GRID_KIND_TYPED) {
        grid_reader_advance_(r, r->pos);
        return GRID_OK;
    }
    pos = r->pos;
    s = grid_scan_value_(r->buf, r->len, &pos, why);
    if (s != GRID_OK) return grid_reader_fail_(r, s, true, "%s", why);
    grid_reader_advance_(r, pos);
    return GRID_OK;
}

grid_type grid_peek(grid_reader *r) {
    grid_head_ h;
    const char *why;
    if (r->status != GRID_OK) return GRID_TYPE_NONE;
    grid_reader_pop_(r);
    if (r->depth == 0 && r->frames[0].next == r->frames[0].count) return GRID_TYPE_NONE;
    if (r->frames[r->depth].kind == GRID_KIND_TYPED) {
        grid_typed_head_(r, &h);
        return grid_head_type_(&h);
    }
    if (grid_head_parse_(r->buf, r->len, r->pos, &h, &why) != GRID_OK) return GRID_TYPE_INVALID;
    return grid_head_type_(&h);
}

/* Reads one number of element type `elem` into dst, checking its range. */
static grid_status grid_read_elem_(grid_reader *r, int elem, void *dst) {
    grid_head_ h;
    grid_status s;
    int64_t v;
    if (elem == GRID_ELEM_F32_ || elem == GRID_ELEM_F64_) {
        double d;
        float f;
        s = grid_read_double(r, &d);
        if (s != GRID_OK) return s;
        f = (float)d; /* IEEE 754 rounding, as wasm's f32.demote_f64 */
        if (elem == GRID_ELEM_F32_) memcpy(dst, &f, sizeof f);
        else memcpy(dst, &d, sizeof d);
        return GRID_OK;
    }
    s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (h.major > 1) return grid_reader_wrong_type_(r, &h, "integer");
    /* A negative value -1 - arg fits a signed type whose max is M iff arg <= M;
     * the element enum alternates unsigned (even) and signed (odd) types. */
    if (h.arg > grid_elems_[elem].max || (h.major == 1 && elem % 2 == 0))
        return grid_reader_fail_(r, GRID_E_RANGE, true, "integer out of %s range",
                                 grid_elems_[elem].c_name);
    v = h.major == 0 ? (int64_t)h.arg : -1 - (int64_t)h.arg;
    switch (elem) {
    case GRID_ELEM_U8_: *(uint8_t *)dst = (uint8_t)h.arg; break;
    case GRID_ELEM_I8_: *(int8_t *)dst = (int8_t)v; break;
    case GRID_ELEM_U16_: *(uint16_t *)dst = (uint16_t)h.arg; break;
    case GRID_ELEM_I16_: *(int16_t *)dst = (int16_t)v; break;
    case GRID_ELEM_U32_: *(uint32_t *)dst = (uint32_t)h.arg; break;
    case GRID_ELEM_I32_: *(int32_t *)dst = (int32_t)v; break;
    case GRID_ELEM_U64_: *(uint64_t *)dst = h.arg; break;
    default: *(int64_t *)dst = v; break;
    }
    grid_reader_advance_(r, r->pos + h.size);
    return GRID_OK;
}

/* An array of numbers as elements of type `elem` in a fresh buffer: one memcpy
 * from a typed array of that type, element by element from anything else. */
static grid_status grid_read_numbers_(grid_reader *r, int elem, void **out, size_t *count) {
    grid_head_ h;
    size_t n, i, data;
    unsigned size = grid_elems_[elem].size;
    uint8_t *buf;
    grid_status s = grid_reader_head_(r, &h);
    if (s != GRID_OK) return s;
    if (grid_head_type_(&h) != GRID_TYPE_ARRAY)
        return grid_reader_wrong_type_(r, &h, "array of numbers");
    if (h.major == 6 && (grid_typed_tag_(h.arg) & ~GRID_ELEM_BE_) == elem) {
        bool big_endian = (grid_typed_tag_(h.arg) & GRID_ELEM_BE_) != 0;
        s = grid_reader_typed_(r, &h, &data, &n);
        if (s != GRID_OK) return s;
        buf = (uint8_t *)GRID_MALLOC(n ? n * size : 1);
        if (buf == NULL) return grid_reader_fail_(r, GRID_E_NOMEM, true, "out of memory");
        if (n) memcpy(buf, r->buf + data, n * size);
        if (big_endian != GRID_HOST_BE_) grid_swap_(buf, n, size);
        grid_reader_advance_(r, data + n * size);
        *out = buf;
        *count = n;
        return GRID_OK;
    }
    s = grid_read_array(r, &n);
    if (s != GRID_OK) return s;
    /* n is at most the input's length, but n * size need not fit on wasm32. */
    buf = n <= SIZE_MAX / size ? (uint8_t *)GRID_MALLOC(n ? n * size : 1) : NULL;
    if (buf == NULL) return grid_reader_fail_(r, GRID_E_NOMEM, true, "out of memory");
    for (i = 0; i < n; i++) {
        s = grid_read_elem_(r, elem, buf + i * size);
        if (s != GRID_OK) {
            GRID_FREE(buf);
            return s;
        }
    }
    *out = buf;
    *count = n;
    return GRID_OK;
}

grid_status grid_reader_end(grid_reader *r) {
    if (r->status != GRID_OK) return r->status;
    grid_reader_pop_(r);
    if (r->depth > 0)
        return grid_reader_fail_(r, GRID_E_COUNT, true, "%zu value%s left unread from here",
                                 r->frames[r->depth].count - r->frames[r->depth].next,
                                 r->frames[r->depth].count - r->frames[r->depth].next == 1 ? ""
                                                                                           : "s");
    if (r->frames[0].next != r->frames[0].count) {
        if (r->frames[0].kind == GRID_KIND_ARGS)
            return grid_reader_fail_(r, GRID_E_COUNT, false, "expected %zu argument%s, got %zu",
                                     r->frames[0].next, r->frames[0].next == 1 ? "" : "s",
                                     r->frames[0].count);
        return grid_reader_fail_(r, GRID_E_COUNT, false, "value left unread");
    }
    if (r->pos != r->len)
        return grid_reader_fail_(r, GRID_E_MALFORMED, false,
                                 "malformed CBOR: %zu byte(s) after the end", r->len - r->pos);
    return GRID_OK;
}

grid_status grid_reader_status(const grid_reader *r) { return r->status; }

const char *grid_reader_message(const grid_reader *r) { return r->message; }

/* ---- writer ------------------------------------------------------------- */

static grid_status grid_writer_fail_(grid_writer *w, grid_status status, const char *error) {
    if (w->status == GRID_OK) {
        w->status = status;
        w->error = error;
    }
    return w->status;
}

/* Appends raw bytes, growing the buffer. */
static grid_status grid_writer_put_(grid_writer *w, const void *p, size_t n) {
    if (w->status != GRID_OK) return w->status;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 64;
        uint8_t *grown;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) return grid_writer_fail_(w, GRID_E_NOMEM, "out of memory");
            cap *= 2;
        }
        grown = (uint8_t *)GRID_REALLOC(w->buf, cap);
        if (grown == NULL) return grid_writer_fail_(w, GRID_E_NOMEM, "out of memory");
        w->buf = grown;
        w->cap = cap;
    }
    if (n) memcpy(w->buf + w->len, p, n);
    w->len += n;
    return GRID_OK;
}

/* Appends a head in its shortest form. */
static grid_status grid_writer_head_(grid_writer *w, unsigned major, uint64_t arg) {
    uint8_t b[9];
    size_t n, i;
    if (arg < 24) {
        b[0] = (uint8_t)(major << 5 | arg);
        return grid_writer_put_(w, b, 1);
    }
    if (arg <= 0xff) { b[0] = (uint8_t)(major << 5 | 24); n = 1; }
    else if (arg <= 0xffff) { b[0] = (uint8_t)(major << 5 | 25); n = 2; }
    else if (arg <= 0xffffffffu) { b[0] = (uint8_t)(major << 5 | 26); n = 4; }
    else { b[0] = (uint8_t)(major << 5 | 27); n = 8; }
    for (i = 0; i < n; i++) b[1 + i] = (uint8_t)(arg >> (8 * (n - 1 - i)));
    return grid_writer_put_(w, b, 1 + n);
}

/* Accounts for one more value in the open container; fails if it is full. */
static grid_status grid_writer_value_(grid_writer *w) {
    if (w->status != GRID_OK) return w->status;
    while (w->depth > 0 && w->frames[w->depth].next == w->frames[w->depth].count) w->depth--;
    if (w->frames[w->depth].next == w->frames[w->depth].count)
        return grid_writer_fail_(w, GRID_E_COUNT, "more values written than the result holds");
    w->frames[w->depth].next++;
    return GRID_OK;
}

void grid_writer_init(grid_writer *w) {
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->depth = 0;
    w->frames[0].count = 1;
    w->frames[0].next = 0;
    w->frames[0].kind = GRID_KIND_VALUE;
    w->status = GRID_OK;
    w->error = "";
}

/* A one-entry map with a text key: the envelope around the value written next. */
static void grid_writer_begin_envelope_(grid_writer *w, const char *key) {
    size_t n = strlen(key);
    grid_writer_init(w);
    grid_writer_head_(w, 5, 1);
    grid_writer_head_(w, 3, n);
    grid_writer_put_(w, key, n);
}

void grid_writer_begin_ok(grid_writer *w) { grid_writer_begin_envelope_(w, "ok"); }
void grid_writer_begin_err(grid_writer *w) { grid_writer_begin_envelope_(w, "err"); }
void grid_writer_begin_bad_arguments(grid_writer *w) {
    grid_writer_begin_envelope_(w, "bad_arguments");
}

grid_status grid_write_int(grid_writer *w, int64_t v) {
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    if (v >= 0) return grid_writer_head_(w, 0, (uint64_t)v);
    return grid_writer_head_(w, 1, (uint64_t)(-1 - v));
}

grid_status grid_write_double(grid_writer *w, double v) {
    uint64_t bits;
    uint8_t b[9];
    int i;
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    memcpy(&bits, &v, sizeof bits);
    /* Always the 8-byte form: shorter forms are optional in CBOR. */
    b[0] = 0xfb;
    for (i = 0; i < 8; i++) b[1 + i] = (uint8_t)(bits >> (8 * (7 - i)));
    return grid_writer_put_(w, b, sizeof b);
}

grid_status grid_write_bool(grid_writer *w, bool v) {
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    return grid_writer_put_(w, v ? "\xf5" : "\xf4", 1);
}

grid_status grid_write_null(grid_writer *w) {
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    return grid_writer_put_(w, "\xf6", 1);
}

grid_status grid_write_text(grid_writer *w, const char *s, size_t len) {
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    if (len > 0 && s == NULL) return grid_writer_fail_(w, GRID_E_MALFORMED, "text is NULL");
    if (!grid_utf8_valid_((const uint8_t *)s, len))
        return grid_writer_fail_(w, GRID_E_MALFORMED, "text is not valid UTF-8");
    grid_writer_head_(w, 3, len);
    return grid_writer_put_(w, s, len);
}

grid_status grid_write_str(grid_writer *w, const char *s) {
    return grid_write_text(w, s, s ? strlen(s) : 0);
}

grid_status grid_write_bytes(grid_writer *w, const void *p, size_t len) {
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    if (len > 0 && p == NULL) return grid_writer_fail_(w, GRID_E_MALFORMED, "bytes are NULL");
    grid_writer_head_(w, 2, len);
    return grid_writer_put_(w, p, len);
}

static grid_status grid_write_container_(grid_writer *w, unsigned major, size_t size) {
    size_t values = size * (major == 5 ? 2 : 1);
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    if (major == 5 && size > SIZE_MAX / 2)
        return grid_writer_fail_(w, GRID_E_RANGE, "map too large");
    if (values > 0 && w->depth + 1 >= GRID_MAX_DEPTH)
        return grid_writer_fail_(w, GRID_E_UNSUPPORTED, "result nested deeper than GRID_MAX_DEPTH");
    if (grid_writer_head_(w, major, size) != GRID_OK) return w->status;
    if (values > 0) {
        w->depth++;
        w->frames[w->depth].count = values;
        w->frames[w->depth].next = 0;
        w->frames[w->depth].kind = major == 5 ? GRID_KIND_MAP : GRID_KIND_ARRAY;
    }
    return GRID_OK;
}

grid_status grid_write_array(grid_writer *w, size_t count) {
    return grid_write_container_(w, 4, count);
}

grid_status grid_write_map(grid_writer *w, size_t entries) {
    return grid_write_container_(w, 5, entries);
}

/* n elements of type `elem` at p as one typed array: tag, byte string, one memcpy. */
static grid_status grid_write_typed_(grid_writer *w, int elem, const void *p, size_t n) {
    unsigned size = grid_elems_[elem].size;
    if (grid_writer_value_(w) != GRID_OK) return w->status;
    if (n > 0 && p == NULL) return grid_writer_fail_(w, GRID_E_MALFORMED, "array is NULL");
    if (n > SIZE_MAX / size) return grid_writer_fail_(w, GRID_E_RANGE, "array too large");
    grid_writer_head_(w, 6, grid_elems_[elem].tag);
    grid_writer_head_(w, 2, (uint64_t)n * size);
    if (grid_writer_put_(w, p, n * size) != GRID_OK) return w->status;
    if (GRID_HOST_BE_) grid_swap_(w->buf + w->len - n * size, n, size);
    return GRID_OK;
}

grid_status grid_writer_done(grid_writer *w) {
    if (w->status != GRID_OK) return w->status;
    while (w->depth > 0 && w->frames[w->depth].next == w->frames[w->depth].count) w->depth--;
    if (w->depth > 0 || w->frames[0].next != w->frames[0].count)
        return grid_writer_fail_(w, GRID_E_COUNT,
                                 "incomplete: an array or map has fewer values than declared, "
                                 "or no value was written");
    return GRID_OK;
}

void grid_writer_release(grid_writer *w) {
    GRID_FREE(w->buf);
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
}

int64_t grid_writer_finish(grid_writer *w) {
    if (grid_writer_done(w) != GRID_OK) {
        char message[200];
        grid_writer_release(w);
        snprintf(message, sizeof message, "grid.h: cannot build the result: %s", w->error);
        grid_panic(message);
    }
    return grid_pack(w->buf, w->len);
}

/* ---- one-call results --------------------------------------------------- */

int64_t grid_ok_int(int64_t v) {
    grid_writer w;
    grid_writer_begin_ok(&w);
    grid_write_int(&w, v);
    return grid_writer_finish(&w);
}

int64_t grid_ok_double(double v) {
    grid_writer w;
    grid_writer_begin_ok(&w);
    grid_write_double(&w, v);
    return grid_writer_finish(&w);
}

int64_t grid_ok_bool(bool v) {
    grid_writer w;
    grid_writer_begin_ok(&w);
    grid_write_bool(&w, v);
    return grid_writer_finish(&w);
}

int64_t grid_ok_null(void) {
    grid_writer w;
    grid_writer_begin_ok(&w);
    grid_write_null(&w);
    return grid_writer_finish(&w);
}

int64_t grid_ok_text(const char *s, size_t len) {
    grid_writer w;
    grid_writer_begin_ok(&w);
    grid_write_text(&w, s, len);
    return grid_writer_finish(&w);
}

int64_t grid_ok_str(const char *s) { return grid_ok_text(s, s ? strlen(s) : 0); }

int64_t grid_ok_bytes(const void *p, size_t len) {
    grid_writer w;
    grid_writer_begin_ok(&w);
    grid_write_bytes(&w, p, len);
    return grid_writer_finish(&w);
}

/* The typed-array functions of one element type: read, write and ok. */
#define GRID_TYPED_FUNCTIONS_(name, type, elem)                                       \
    grid_status grid_read_##name##_array(grid_reader *r, type **out, size_t *count) { \
        void *p;                                                                      \
        grid_status s = grid_read_numbers_(r, elem, &p, count);                       \
        if (s == GRID_OK) *out = (type *)p;                                           \
        return s;                                                                     \
    }                                                                                 \
    grid_status grid_write_##name##_array(grid_writer *w, const type *p, size_t n) {  \
        return grid_write_typed_(w, elem, p, n);                                      \
    }                                                                                 \
    int64_t grid_ok_##name##_array(const type *p, size_t n) {                         \
        grid_writer w;                                                                \
        grid_writer_begin_ok(&w);                                                     \
        grid_write_typed_(&w, elem, p, n);                                            \
        return grid_writer_finish(&w);                                                \
    }

GRID_TYPED_FUNCTIONS_(u8, uint8_t, GRID_ELEM_U8_)
GRID_TYPED_FUNCTIONS_(i8, int8_t, GRID_ELEM_I8_)
GRID_TYPED_FUNCTIONS_(u16, uint16_t, GRID_ELEM_U16_)
GRID_TYPED_FUNCTIONS_(i16, int16_t, GRID_ELEM_I16_)
GRID_TYPED_FUNCTIONS_(u32, uint32_t, GRID_ELEM_U32_)
GRID_TYPED_FUNCTIONS_(i32, int32_t, GRID_ELEM_I32_)
GRID_TYPED_FUNCTIONS_(u64, uint64_t, GRID_ELEM_U64_)
GRID_TYPED_FUNCTIONS_(i64, int64_t, GRID_ELEM_I64_)
GRID_TYPED_FUNCTIONS_(f32, float, GRID_ELEM_F32_)
GRID_TYPED_FUNCTIONS_(f64, double, GRID_ELEM_F64_)

int64_t grid_err(const char *message) {
    grid_writer w;
    grid_writer_begin_err(&w);
    grid_write_str(&w, message);
    return grid_writer_finish(&w);
}

int64_t grid_errf(const char *format, ...) {
    va_list ap;
    int n;
    char *text;
    int64_t out;
    va_start(ap, format);
    n = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    if (n < 0) return grid_err(format);
    text = (char *)GRID_MALLOC((size_t)n + 1);
    if (text == NULL) grid_panic("grid.h: out of memory formatting an error");
    va_start(ap, format);
    vsnprintf(text, (size_t)n + 1, format, ap);
    va_end(ap);
    out = grid_err(text);
    GRID_FREE(text);
    return out;
}

int64_t grid_bad_arguments(const char *message) {
    grid_writer w;
    grid_writer_begin_bad_arguments(&w);
    grid_write_str(&w, message);
    return grid_writer_finish(&w);
}

int64_t grid_bad_arguments_from(const grid_reader *r) {
    return grid_bad_arguments(r->status != GRID_OK ? r->message : "bad arguments");
}

/* ---- namespace and panic ------------------------------------------------ */

grid_status grid_ns_get_cbor(const char *name, uint8_t **cbor, size_t *len) {
    int64_t packed = grid_ns_get_raw(name, strlen(name));
    uint8_t *ptr;
    /* -1 cannot be a real location: its length would be 4 GiB - 1. */
    if (packed == -1) return GRID_E_ABSENT;
    ptr = (uint8_t *)(uintptr_t)(uint32_t)((uint64_t)packed >> 32);
    if (ptr == NULL) return GRID_E_NOMEM; /* our grid_alloc failed */
    *cbor = ptr;
    *len = (size_t)(uint32_t)packed;
    return GRID_OK;
}

/* Fetches an entry and opens a reader on it; the caller frees *cbor. */
static grid_status grid_ns_open_(const char *name, grid_reader *r, uint8_t **cbor) {
    size_t len;
    grid_status s = grid_ns_get_cbor(name, cbor, &len);
    if (s != GRID_OK) return s;
    return grid_value_begin(r, *cbor, len);
}

grid_status grid_ns_get_int(const char *name, int64_t *out) {
    grid_reader r;
    uint8_t *cbor;
    int64_t v = 0;
    grid_status s = grid_ns_open_(name, &r, &cbor);
    if (s != GRID_OK) return s;
    s = grid_read_int(&r, &v);
    if (s == GRID_OK) s = grid_reader_end(&r);
    if (s == GRID_OK) *out = v;
    grid_free(cbor, 0);
    return s;
}

grid_status grid_ns_get_double(const char *name, double *out) {
    grid_reader r;
    uint8_t *cbor;
    double v = 0;
    grid_status s = grid_ns_open_(name, &r, &cbor);
    if (s != GRID_OK) return s;
    s = grid_read_double(&r, &v);
    if (s == GRID_OK) s = grid_reader_end(&r);
    if (s == GRID_OK) *out = v;
    grid_free(cbor, 0);
    return s;
}

grid_status grid_ns_get_text(const char *name, char **out, size_t *len) {
    grid_reader r;
    uint8_t *cbor;
    const char *text;
    size_t n = 0;
    grid_status s = grid_ns_open_(name, &r, &cbor);
    if (s != GRID_OK) return s;
    s = grid_read_text(&r, &text, &n);
    if (s == GRID_OK) s = grid_reader_end(&r);
    if (s != GRID_OK) {
        grid_free(cbor, 0);
        return s;
    }
    /* The head took at least one byte, so the text and a NUL fit where it began. */
    memmove(cbor, text, n);
    cbor[n] = '\0';
    *out = (char *)cbor;
    *len = n;
    return GRID_OK;
}

grid_status grid_ns_set_cbor(const char *name, const void *cbor, size_t len) {
    return grid_ns_set_raw(name, strlen(name), cbor, len) == 0 ? GRID_OK : GRID_E_MALFORMED;
}

/* Stores the value in a bare writer, then frees the writer. */
static grid_status grid_ns_set_writer_(const char *name, grid_writer *w) {
    grid_status s = grid_writer_done(w);
    if (s == GRID_OK) s = grid_ns_set_cbor(name, w->buf, w->len);
    grid_writer_release(w);
    return s;
}

grid_status grid_ns_set_int(const char *name, int64_t v) {
    grid_writer w;
    grid_writer_init(&w);
    grid_write_int(&w, v);
    return grid_ns_set_writer_(name, &w);
}

grid_status grid_ns_set_double(const char *name, double v) {
    grid_writer w;
    grid_writer_init(&w);
    grid_write_double(&w, v);
    return grid_ns_set_writer_(name, &w);
}

grid_status grid_ns_set_text(const char *name, const char *s, size_t len) {
    grid_writer w;
    grid_writer_init(&w);
    grid_write_text(&w, s, len);
    return grid_ns_set_writer_(name, &w);
}

grid_status grid_ns_set_str(const char *name, const char *s) {
    return grid_ns_set_text(name, s, s ? strlen(s) : 0);
}

bool grid_ns_del(const char *name) { return grid_ns_del_raw(name, strlen(name)) == 1; }

void grid_panic(const char *message) {
    if (message == NULL) message = "";
    grid_panic_raw(message, strlen(message));
}

#ifdef __cplusplus
}
#endif

#endif /* GRID_IMPLEMENTATION */
