#!/bin/sh
# run.sh: builds and runs the native unit tests of grid.h (test_grid.c).
#
# Exists so the C SDK's CBOR code is checked on the build machine without wasm
# tooling: gcc with every warning an error, AddressSanitizer and UBSan on, then
# the test binary. Exits non-zero on a compile error or a failed check. Must not
# write anywhere but a temporary directory it removes. Set CC to use another
# compiler (gcc or clang; the arena needs Linux x86_64's MAP_32BIT).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"${CC:-gcc}" -std=c11 -O1 -g -Wall -Wextra -Werror \
    -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -I "$here/.." "$here/test_grid.c" -o "$out/test_grid" -lm
"$out/test_grid"
