#!/bin/sh
# build.sh: builds the C example guest (guest.c) into a wasm32-wasi reactor module.
#
# Usage: build.sh OUT.wasm
#
# Exists so tests and people build the C guest the same way: clang targeting
# wasm32-wasi as a reactor (the engine calls `_initialize`, then a function),
# with guest-sdk/c on the include path, found relative to this script. The
# module keeps its name section (no stripping) so traps show C function names.
# It must not depend on the caller's working directory, and it must fail with
# clang's own message and a non-zero status when the build fails.
# Set CLANG to use another clang binary.
set -eu

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUT.wasm" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)

exec "${CLANG:-clang}" --target=wasm32-wasi -O2 -mexec-model=reactor \
    -std=c11 -Wall -Wextra \
    -I "$here/../../../guest-sdk/c" \
    "$here/guest.c" -o "$1"
