/* guest.c: the C example guest, one function per feature of the Grid ABI.
 *
 * Shows a C programmer what a Grid module looks like with guest-sdk/c/grid.h: CBOR
 * functions with typed arguments, a plain numeric export, captured stdout, a
 * guest error, the namespace, an array argument and an array of numbers read in
 * one memcpy (sum_f64, a typed array). The engine's tests call these
 * functions by name, so names and behaviour are a contract: change them together
 * with those tests. Built by build.sh next to this file.
 *
 * It must not rely on state between calls (every task gets a fresh instance; only
 * the namespace persists) and must not let signed arithmetic overflow (undefined
 * in C): overflow is reported as a guest error instead.
 */
#define GRID_IMPLEMENTATION
#include "grid.h"

#include <stdio.h>
#include <string.h>

/* square(x: int) -> int */
GRID_EXPORT(square, args) {
    int64_t x, result;
    if (grid_args_expect(args, 1) || grid_read_int(args, &x))
        return grid_bad_arguments_from(args);
    if (__builtin_mul_overflow(x, x, &result))
        return grid_errf("square(%lld) overflows int64", (long long)x);
    return grid_ok_int(result);
}

/* cube(x: i32) -> i32, the numeric ABI: no CBOR, wraps around like wasm's i32.mul. */
GRID_EXPORT_AS("cube") int32_t cube(int32_t x);
int32_t cube(int32_t x) {
    uint32_t u = (uint32_t)x;
    return (int32_t)(u * u * u);
}

/* greet(name: string) -> string, printing a line to the task's stdout. */
GRID_EXPORT(greet, args) {
    char *name, *greeting;
    size_t size;
    int64_t out;
    if (grid_args_expect(args, 1) || grid_read_cstr(args, &name))
        return grid_bad_arguments_from(args);
    printf("hi %s\n", name);
    /* The engine reads stdout when the task ends; nothing flushes it for us. */
    fflush(stdout);
    size = strlen(name) + sizeof "hi ";
    greeting = grid_alloc(size);
    if (greeting == NULL) grid_panic("out of memory");
    snprintf(greeting, size, "hi %s", name);
    out = grid_ok_str(greeting);
    grid_free(greeting, size);
    grid_free(name, 0);
    return out;
}

/* safe_div(a: int, b: int) -> int, failing with a guest error instead of trapping. */
GRID_EXPORT(safe_div, args) {
    int64_t a, b;
    if (grid_args_expect(args, 2) || grid_read_int(args, &a) || grid_read_int(args, &b))
        return grid_bad_arguments_from(args);
    if (b == 0) return grid_err("division by zero");
    if (a == INT64_MIN && b == -1) return grid_err("integer overflow");
    return grid_ok_int(a / b);
}

/* c_bump(name: string) -> int: adds 1 to the integer namespace entry `name`
 * (absent counts as 0), stores it and returns it. */
GRID_EXPORT(c_bump, args) {
    char *name;
    int64_t n = 0;
    grid_status s;
    if (grid_args_expect(args, 1) || grid_read_cstr(args, &name))
        return grid_bad_arguments_from(args);
    s = grid_ns_get_int(name, &n);
    if (s != GRID_OK && s != GRID_E_ABSENT) {
        int64_t out = grid_errf("namespace entry %s is not an int64: %s", name, grid_status_str(s));
        grid_free(name, 0);
        return out;
    }
    if (n == INT64_MAX) {
        grid_free(name, 0);
        return grid_err("counter overflow");
    }
    n++;
    s = grid_ns_set_int(name, n);
    grid_free(name, 0);
    if (s != GRID_OK) return grid_errf("cannot store the counter: %s", grid_status_str(s));
    return grid_ok_int(n);
}

/* sum(xs: array of numbers) -> float */
GRID_EXPORT(sum, args) {
    size_t n, i;
    double total = 0, x;
    if (grid_args_expect(args, 1) || grid_read_array(args, &n))
        return grid_bad_arguments_from(args);
    for (i = 0; i < n; i++) {
        if (grid_read_double(args, &x)) return grid_bad_arguments_from(args);
        total += x;
    }
    return grid_ok_double(total);
}

/* sum_f64(xs: array of numbers) -> float. A float64 typed array is copied in one
 * memcpy; a plain array, or a typed array of another type, converts per element. */
GRID_EXPORT(sum_f64, args) {
    double *xs, total = 0;
    size_t n, i;
    if (grid_args_expect(args, 1) || grid_read_f64_array(args, &xs, &n))
        return grid_bad_arguments_from(args);
    for (i = 0; i < n; i++) total += xs[i];
    grid_free(xs, 0);
    return grid_ok_double(total);
}
