"""`python3 bench/load.py`: many `grid map` clients at once on one NATS cluster.

Issue 10's load case: before clients bounded what they keep in flight and
recovered lost tasks, twenty `grid map` processes of 5,000 unchunked tasks
against one controller and an engine process of 2 slots left seven hanging
(the controller's subscriptions dropped messages). The issue asks that 50
concurrent clients of 10,000 tasks each all finish, every value right.

This script builds `grid` in release mode (`--no-build` skips it), starts a
cluster with `grid cluster start -n 2` (nats-server, a controller, an engine
process of 2 slots) in a temporary state directory, runs `--clients`
`grid map --range 0..TASKS` processes at once, checks every output line,
prints the wall time, the tasks per second, the slowest client, and what
`grid status` reports as dropped messages, then stops the cluster. The CI
pass of the same scenario (20 x 5,000, debug build) is
`cli/tests/load.rs`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--chunksize", type=int, default=1)
    parser.add_argument("--patience", type=float, default=300,
                        help="seconds after which a client still running counts as hung")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--grid", help="this grid binary instead of a fresh release build "
                        "(to compare with an older one)")
    args = parser.parse_args()
    if not args.no_build and not args.grid:
        subprocess.run(["cargo", "build", "--release", "-p", "grid-cli"], cwd=ROOT, check=True)
    grid = args.grid or os.path.join(ROOT, "target/release/grid")
    module = os.path.join(ROOT, "examples/guests/wat/square.wat")
    with tempfile.TemporaryDirectory() as state:
        env = dict(os.environ, GRID_STATE_DIR=state)
        env.pop("GRID_URL", None)
        url = subprocess.run([grid, "cluster", "start", "-n", "2"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        env["GRID_URL"] = url
        try:
            run(grid, module, env, args)
        finally:
            subprocess.run([grid, "cluster", "stop"], env=env, capture_output=True)


def run(grid, module, env, args):
    expected = [str(i * i) for i in range(args.tasks)]
    started = time.monotonic()
    procs = [
        subprocess.Popen([grid, "map", module, "square", "--range", f"0..{args.tasks}",
                          "--chunksize", str(args.chunksize)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(args.clients)
    ]
    failures = 0
    slowest = 0.0
    for k, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=max(1.0, args.patience - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += f"\n(killed: still running after {args.patience} s)"
        slowest = max(slowest, time.monotonic() - started)
        if p.returncode != 0 or out.split() != expected:
            failures += 1
            print(f"client {k}: exit {p.returncode}, {len(out.split())} lines: {err.strip()[-300:]}",
                  file=sys.stderr)
    wall = time.monotonic() - started
    total = args.clients * args.tasks
    status = subprocess.run([grid, "status", "--json"], env=env, capture_output=True, text=True)
    dropped = "?"
    try:
        s = json.loads(status.stdout)
        dropped = {"controller": s.get("dropped", 0),
                   "engines": sum(e.get("dropped", 0) for e in s.get("engines", []))}
    except ValueError:
        pass
    print(f"{args.clients} clients x {args.tasks:,} tasks (chunksize {args.chunksize}): "
          f"{wall:.1f} s, {total / wall:,.0f} tasks/s, last client done at {slowest:.1f} s; "
          f"{args.clients - failures} of {args.clients} finished with every value right; "
          f"dropped messages reported: {dropped}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
