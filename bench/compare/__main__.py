"""`python3 bench/compare`: Grid side by side with ipyparallel, Dask and Ray.

One command answers "how much faster than what I use now?": it runs Grid
(the embedded local cluster, and a real nats-server cluster started with
`grid cluster start`) and its peers on the same workloads, 2 workers each, on
this machine, and prints a table of figures with the ratio of Grid to each
peer; the same goes to a JSON file (`target/compare/results.json` unless
`--json` says otherwise).

What it does, in order:
1. Makes the Python virtualenv `bench/.venv` (ignored by git) with the peers
   `--peers` asks for, from PyPI, if they are not there (pinned versions, the
   ones this bench was written against).
2. Builds `grid` and `compare-grid` in release mode (`--no-build` skips it).
3. For each round (`--rounds`, 2 by default), for each system, in an order
   that rotates between rounds so no system always runs first or last:
   starts the system's runner (`compare-grid` for Grid,
   `bench/compare/peers.py` for the peers; both speak the line protocol in
   peers.py's docs), which starts its cluster and reports the start time,
   then sends it the workloads one by one. One system runs at a time, so no
   cluster's background activity lands on another's figures.
4. Before each cluster start and each workload it waits for an idle machine:
   CPU time used by processes other than the runner and its children must
   stay under `--idle-cpu` (10% of one core by default) over half a second.
   It waits up to `--idle-wait` seconds, then measures anyway and marks the
   figure (`*` in the table, `not_idle` in the JSON) with how busy it was.
5. Keeps each figure's best over the rounds (the least disturbed run, on a
   shared machine), prints the table and the issue's targets against
   ipyparallel, and writes the JSON (with every round's raw figures).

Ratios read "Grid is N times better": Grid / peer for rates, peer / Grid for
times and memory.

`--schemes` measures Grid alone instead: for each scheduler scheme
(leastload, lru, twobin, weighted, plainrandom, pure), a Grid runner started with `--scheme NAME` runs the unchunked map
(`map1`) and `skewed` (200 sleeps, about one in ten of 50 ms, the rest 1 ms,
a fixed pattern), and a table shows each scheme's figures on each backend
(JSON in `target/compare/schemes.json`). A backend that cannot start a
scheme (a `grid cluster start` without `--scheme`) shows `n/a`.

`--arrays` runs only the numeric-array workloads (issue 14), Grid's typed
arrays against numpy arrays, with every system and backend: `push_array` and
`pull_array` (100 MB of float64 to worker 0 and back, MB/s),
`scatter_gather_array` (10,000,000 float64 over the 2 workers and back, s)
and `sum_map` (a map of a sum over 1,000 chunks of 10,000 float64, one task
each, items/s). The table shows just their rows and the issue's targets for
them (JSON in `target/compare/arrays.json`). The peers' side needs numpy,
which the virtualenv gets with the peers.

The CI pass of this bench is `compare-grid`'s unit tests (`cargo test -p
grid-bench`): the `dag` and `skewed` workloads, every scheme and the array
workloads, small, on the local cluster, and the `dag` graph checked against
`dag.py`.

This file must not measure anything itself: the runners do, in their own
processes; it only schedules, waits for idleness and reports.
"""

import argparse
import json
import os
import platform
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench" / ".venv"
PEERS = {  # name -> the pip requirement that provides it, and its module
    "ipyparallel": ("ipyparallel==9.2.0", "ipyparallel"),
    "dask": ("distributed==2026.8.0", "distributed"),
    "ray": ("ray==2.60.0", "ray"),
}
# Every peer's runner needs these too: psutil for the memory figures, numpy
# for the `--arrays` workloads.
COMMON = {"psutil": "psutil", "numpy==2.4.6": "numpy"}
GRIDS = ["grid-local", "grid-nats"]
# `rss` right after `map1`: the peak memory after the 10,000-task map.
WORKLOADS = [
    "apply_lb",
    "apply_direct",
    "map1",
    "rss",
    "map100",
    "async",
    "dag",
    "push",
    "pull",
    "scatter_gather",
    "sleep40",
]
# (workload, figure, label, unit, higher is better)
ROWS = [
    ("start", "start_s", "cluster start to all engines ready", "s", False),
    ("apply_lb", "p50_us", "apply_sync load-balanced p50", "us", False),
    ("apply_lb", "p99_us", "apply_sync load-balanced p99", "us", False),
    ("apply_lb", "calls_per_s", "apply_sync load-balanced", "calls/s", True),
    ("apply_direct", "p50_us", "apply_sync direct p50", "us", False),
    ("apply_direct", "p99_us", "apply_sync direct p99", "us", False),
    ("apply_direct", "calls_per_s", "apply_sync direct", "calls/s", True),
    ("map1", "tasks_per_s", "map of N tasks, chunksize 1", "tasks/s", True),
    ("map100", "tasks_per_s", "map of N tasks, chunksize 100", "tasks/s", True),
    ("async", "tasks_per_s", "N apply_async, then wait", "tasks/s", True),
    ("dag", "tasks_per_s", "DAG of N tasks, each after up to 2 earlier", "tasks/s", True),
    ("push", "mb_per_s", "push of 10 MB", "MB/s", True),
    ("pull", "mb_per_s", "pull of 10 MB", "MB/s", True),
    ("scatter_gather", "scatter_s", "scatter of 1,000,000 ints", "s", False),
    ("scatter_gather", "gather_s", "gather of 1,000,000 ints", "s", False),
    ("sleep40", "seconds", "40 x 50 ms tasks (ideal 1.0 s)", "s", False),
    ("rss", "client_mb", "peak RSS after the map: client", "MB", False),
    ("rss", "controller_mb", "peak RSS: controller", "MB", False),
    ("rss", "engine_mb", "peak RSS: one engine", "MB", False),
]
# `--schemes`: every scheme, on the local cluster and over NATS (pure: no
# scheduler, the engines share a NATS queue group).
SCHEMES = ["leastload", "lru", "twobin", "weighted", "plainrandom", "pure"]
SCHEME_WORKLOADS = ["map1", "skewed"]
SCHEME_ROWS = [
    ("map1", "tasks_per_s", "map of N tasks, chunksize 1", "tasks/s", True),
    ("skewed", "seconds", "200 tasks of 1 or 50 ms (ideal 0.71 s)", "s", False),
]
# `--arrays`: numeric arrays, Grid's typed arrays against numpy's (issue 14).
ARRAY_WORKLOADS = ["push_array", "pull_array", "scatter_gather_array", "sum_map"]
ARRAY_ROWS = [
    ("push_array", "mb_per_s", "push of 100 MB of float64", "MB/s", True),
    ("pull_array", "mb_per_s", "pull of 100 MB of float64", "MB/s", True),
    ("scatter_gather_array", "scatter_s", "scatter of 10,000,000 float64", "s", False),
    ("scatter_gather_array", "gather_s", "gather of 10,000,000 float64", "s", False),
    ("sum_map", "items_per_s", "sum over 1,000 chunks of 10,000 float64", "items/s", True),
]
# The issue's target for `dag`: Grid this many times the fastest peer.
DAG_TARGET_X = 10
START_TIMEOUT_S = 300
WORKLOAD_TIMEOUT_S = 900


def main():
    args = parse_args()
    peers = [p for p in args.peers.split(",") if p]
    grids = [g for g in args.grid.split(",") if g]
    for name in peers:
        if name not in PEERS:
            sys.exit(f"error: unknown peer {name!r} (known: {', '.join(PEERS)})")
    for name in grids:
        if name not in GRIDS:
            sys.exit(f"error: unknown Grid backend {name!r} (known: {', '.join(GRIDS)})")
    if args.schemes and args.arrays:
        sys.exit("error: --schemes and --arrays are separate runs: choose one")
    if args.schemes:
        peers = []
    if peers:
        ensure_venv(peers)
    if not args.no_build:
        build()
    logs = ROOT / "target" / "compare" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if args.schemes:
        run_schemes(grids, args, logs)
        return
    systems = grids + peers
    if args.arrays:
        workloads, rows, check, issue, out = (
            ARRAY_WORKLOADS, ARRAY_ROWS, array_targets, "issue 14's arrays", "arrays.json")
    else:
        workloads, rows, check, issue, out = (
            WORKLOADS, ROWS, targets, "issue 5, and the DAG's", "results.json")
    rounds = run_rounds(systems, workloads, args, logs)
    best = best_of(rounds, systems, rows)
    report = {
        "machine": machine(),
        "tasks": args.tasks,
        "calls": args.calls,
        "rounds": rounds,
        "best": best,
        "targets": check(best),
    }
    print_table(best, systems, rows, args)
    print_targets(report["targets"], issue)
    write_json(report, args.json or ROOT / "target" / "compare" / out)


def run_rounds(systems, workloads, args, logs):
    """Every system through `workloads`, `--rounds` times, in rotating order."""
    rounds = []
    for number in range(args.rounds):
        shift = number % len(systems)
        order = systems[shift:] + systems[:shift]
        say(f"round {number + 1} of {args.rounds}: {', '.join(order)}")
        figures = {}
        for system in order:
            figures[system] = run_system(system, workloads, args, logs)
        rounds.append(figures)
    return rounds


def write_json(report, path):
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {out}")


def run_schemes(grids, args, logs):
    """`--schemes`: Grid alone, one runner per backend and scheme."""
    systems = [f"{grid}:{scheme}" for grid in grids for scheme in SCHEMES]
    rounds = run_rounds(systems, SCHEME_WORKLOADS, args, logs)
    best = best_of(rounds, systems, SCHEME_ROWS)
    print_scheme_table(best, grids, args)
    report = {"machine": machine(), "tasks": args.tasks, "rounds": rounds, "best": best}
    write_json(report, args.json or ROOT / "target" / "compare" / "schemes.json")


def parse_args():
    parser = argparse.ArgumentParser(
        prog="python3 bench/compare",
        description="Grid side by side with ipyparallel, Dask and Ray (2 workers each).",
    )
    parser.add_argument("--peers", default="ipyparallel,dask,ray",
                        help="comma-separated subset of ipyparallel,dask,ray ('' for none)")
    parser.add_argument("--grid", default="grid-local,grid-nats",
                        help="comma-separated subset of grid-local,grid-nats")
    parser.add_argument("--tasks", type=int, default=10_000, help="N, tasks per map (10000)")
    parser.add_argument("--calls", type=int, default=2_000, help="timed apply_sync calls (2000)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every system (2)")
    parser.add_argument("--idle-cpu", type=float, default=0.10,
                        help="busy fraction of one core that still counts as idle (0.10)")
    parser.add_argument("--idle-wait", type=float, default=60,
                        help="seconds to wait for an idle machine before measuring anyway")
    parser.add_argument("--schemes", action="store_true",
                        help="Grid alone: every scheduler scheme on map1 and skewed (no peers)")
    parser.add_argument("--arrays", action="store_true",
                        help="only the numeric-array workloads: typed arrays against numpy "
                             "(push/pull 100 MB, scatter/gather, a chunked sum map)")
    parser.add_argument("--json", default=None,
                        help="where to write the figures (target/compare/results.json, "
                             "schemes.json with --schemes, arrays.json with --arrays)")
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def say(message):
    print(f"compare: {message}", file=sys.stderr, flush=True)


def ensure_venv(peers):
    python = VENV / "bin" / "python"
    if not python.exists():
        say(f"creating the virtualenv {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    wanted = {PEERS[p][0]: PEERS[p][1] for p in peers} | COMMON
    missing = [
        requirement for requirement, module in wanted.items()
        if subprocess.run([str(python), "-c", f"import {module}"],
                          capture_output=True).returncode != 0
    ]
    if missing:
        say(f"installing {', '.join(missing)} from PyPI")
        subprocess.run([str(python), "-m", "pip", "install", "-q", *missing], check=True)


def build():
    say("building grid and compare-grid (release)")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "grid-cli",
         "-p", "grid-bench", "--bin", "grid", "--bin", "compare-grid"],
        cwd=ROOT, check=True,
    )


def runner_command(system, args):
    """The runner of `system`: a peer, `grid-BACKEND` or `grid-BACKEND:SCHEME`."""
    sizes = ["--tasks", str(args.tasks), "--calls", str(args.calls)]
    if system.startswith("grid-"):
        backend, _, scheme = system.removeprefix("grid-").partition(":")
        exe = ROOT / "target" / "release" / "compare-grid"
        return [str(exe), "--backend", backend, *(["--scheme", scheme] if scheme else []), *sizes]
    return [str(VENV / "bin" / "python"), str(ROOT / "bench" / "compare" / "peers.py"),
            "--system", system, *sizes]


def run_system(system, workloads, args, logs):
    """Starts one runner, takes it through `workloads`, stops it."""
    figures = {}
    busy = wait_idle(None, args)
    log = open(logs / f"{system}.log", "a")
    runner = subprocess.Popen(runner_command(system, args), cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    try:
        ready = read_event(runner, START_TIMEOUT_S)
        if ready.get("event") != "ready":
            say(f"{system}: could not start: {ready.get('message', ready)}")
            return figures
        figures["start"] = mark(ready["figures"], busy)
        say(f"{system}: started in {ready['figures']['start_s']:.2f} s")
        for workload in workloads:
            # `rss` reads peaks already reached: no need to wait for quiet.
            busy = wait_idle(runner.pid, args) if workload != "rss" else None
            runner.stdin.write(workload + "\n")
            runner.stdin.flush()
            event = read_event(runner, WORKLOAD_TIMEOUT_S)
            if event.get("event") == "done":
                figures[workload] = mark(event["figures"], busy)
                say(f"{system}: {workload} {short(event['figures'])}")
            else:
                say(f"{system}: {workload} failed: {event.get('message', event)}")
    except (TimeoutError, BrokenPipeError, EOFError) as error:
        say(f"{system}: {error} (see {logs / (system + '.log')})")
    finally:
        stop(runner)
        log.close()
    return figures


def read_event(runner, timeout):
    """The runner's next JSON line; raises TimeoutError or EOFError."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {timeout} s")
        ready, _, _ = select.select([runner.stdout], [], [], left)
        if not ready:
            continue
        line = runner.stdout.readline()
        if not line:
            raise EOFError("the runner exited")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            say(f"ignoring a line that is not JSON: {line.strip()[:200]}")


def stop(runner):
    try:
        runner.stdin.write("quit\n")
        runner.stdin.flush()
        runner.stdin.close()
    except (BrokenPipeError, ValueError):
        pass
    try:
        runner.wait(timeout=60)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.wait()


def mark(figures, busy):
    """`figures`, noting how busy the machine was if it never got idle."""
    if busy is not None:
        figures = dict(figures, not_idle=round(busy, 3))
    return figures


def short(figures):
    return ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if isinstance(v, (int, float)))


# Idleness, from /proc: CPU jiffies of the whole machine against those of
# the runner's process tree (and this process).

def cpu_jiffies():
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


def processes():
    """{pid: (ppid, utime + stime)} of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def tree_jiffies(table, roots):
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


def busy_others(runner_pid, window=0.5):
    """Cores' worth of CPU used by others than us over `window` seconds."""
    roots = [os.getpid()] + ([runner_pid] if runner_pid else [])
    before_all, before_ours = cpu_jiffies(), tree_jiffies(processes(), roots)
    time.sleep(window)
    after_all, after_ours = cpu_jiffies(), tree_jiffies(processes(), roots)
    ticks = os.sysconf("SC_CLK_TCK")
    others = (after_all - before_all) - (after_ours - before_ours)
    return max(others, 0) / ticks / window


def wait_idle(runner_pid, args):
    """None once the machine is idle; how busy it was after `--idle-wait` otherwise."""
    deadline = time.monotonic() + args.idle_wait
    announced = False
    while True:
        busy = busy_others(runner_pid)
        if busy <= args.idle_cpu:
            return None
        if time.monotonic() >= deadline:
            say(f"the machine is not idle ({busy:.2f} cores busy elsewhere): measuring anyway")
            return busy
        if not announced:
            say(f"waiting for an idle machine ({busy:.2f} cores busy elsewhere)")
            announced = True


def best_of(rounds, systems, rows):
    """Per system, workload and figure: the best value over the rounds."""
    higher = {(w, f): up for w, f, _, _, up in rows}
    best = {}
    for system in systems:
        merged = {}
        for figures in rounds:
            for workload, values in figures.get(system, {}).items():
                into = merged.setdefault(workload, {})
                for name, value in values.items():
                    if not isinstance(value, (int, float)) or name == "not_idle":
                        into.setdefault(name, value)
                        continue
                    up = higher.get((workload, name), name.endswith("_per_s"))
                    old = into.get(name)
                    if old is None or (value > old if up else value < old):
                        into[name] = value
                        if "not_idle" in values:
                            into["not_idle"] = values["not_idle"]
                        else:
                            into.pop("not_idle", None)
        best[system] = merged
    return best


def value_of(best, system, workload, figure):
    value = best.get(system, {}).get(workload, {}).get(figure)
    return value if isinstance(value, (int, float)) else None


def ratio(grid, peer, up):
    if grid is None or peer is None or grid <= 0 or peer <= 0:
        return None
    return grid / peer if up else peer / grid


def fmt(value):
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.3g}"


def fmt_x(r):
    """A ratio: one decimal, two below 1 (0.24x, not 0.2x)."""
    if r is None:
        return "-"
    return f"{r:,.1f}x" if r >= 1 else f"{r:.2f}x"


def print_table(best, systems, rows_shown, args):
    grids = [s for s in systems if s.startswith("grid-")]
    peers = [s for s in systems if not s.startswith("grid-")]
    ratio_cols = [(g, p) for p in peers for g in grids]
    header = ["figure", "unit", *systems,
              *[f"{g.removeprefix('grid-')}/{p[:4]}" for g, p in ratio_cols]]
    rows = []
    for workload, figure, label, unit, up in rows_shown:
        label = label.replace("N tasks", f"{args.tasks:,} tasks")
        cells = [label, unit]
        for system in systems:
            value = value_of(best, system, workload, figure)
            flag = "*" if "not_idle" in best.get(system, {}).get(workload, {}) else ""
            cells.append(fmt(value) + flag)
        for grid, peer in ratio_cols:
            r = ratio(value_of(best, grid, workload, figure),
                      value_of(best, peer, workload, figure), up)
            cells.append(fmt_x(r))
        rows.append(cells)
    print(f"Grid vs peers, 2 workers each, best of {args.rounds} round(s); "
          "ratios: how many times better Grid is (* = machine was not idle)")
    print_rows(header, rows)


def print_rows(header, rows):
    """An aligned text table: the first column to the left, the others to the right."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def print_scheme_table(best, grids, args):
    """`--schemes`: one row per scheme, one column per backend and figure."""
    columns = [(grid, row) for grid in grids for row in SCHEME_ROWS]
    header = ["scheme", *[f"{grid.removeprefix('grid-')} {workload} ({unit})"
                          for grid, (workload, _, _, unit, _) in columns]]
    rows = []
    for scheme in SCHEMES:
        cells = [scheme]
        for grid, (workload, figure, _, _, _) in columns:
            system = f"{grid}:{scheme}"
            value = value_of(best, system, workload, figure)
            flag = "*" if "not_idle" in best.get(system, {}).get(workload, {}) else ""
            cells.append("n/a" if value is None else fmt(value) + flag)
        rows.append(cells)
    print(f"Grid's scheduler schemes, 2 engines, best of {args.rounds} round(s) "
          "(* = machine was not idle; n/a = failed, see target/compare/logs; - = not run)")
    for workload, _, label, unit, up in SCHEME_ROWS:
        label = label.replace("N tasks", f"{args.tasks:,} tasks")
        print(f"  {workload}: {label}, {unit}, {'higher' if up else 'lower'} is better")
    print_rows(header, rows)


def targets(best):
    """The issue's targets against ipyparallel, with the figures they compare."""
    checks = [
        ("unchunked map, local", "grid-local", "map1", "tasks_per_s", True, 100),
        ("unchunked map, NATS", "grid-nats", "map1", "tasks_per_s", True, 50),
        ("apply_sync p50 load-balanced, local", "grid-local", "apply_lb", "p50_us", False, 20),
        ("apply_sync p50 direct, local", "grid-local", "apply_direct", "p50_us", False, 20),
        ("apply_sync p50 load-balanced, NATS", "grid-nats", "apply_lb", "p50_us", False, 10),
        ("apply_sync p50 direct, NATS", "grid-nats", "apply_direct", "p50_us", False, 10),
        ("client memory after the map, NATS client", "grid-nats", "rss", "client_mb", False, 5),
        ("client memory after the map, local (whole cluster)", "grid-local", "rss", "client_mb",
         False, 5),
    ]
    out = [against_ipyparallel(best, *check) for check in checks]
    for grid, where in (("grid-local", "local"), ("grid-nats", "NATS")):
        out.append(against_fastest(best, f"DAG, {where}, against the fastest peer",
                                   grid, "dag", "tasks_per_s", True, DAG_TARGET_X))
    for grid in ("grid-local", "grid-nats"):
        seconds = value_of(best, grid, "sleep40", "seconds")
        out.append({"target": f"40 x 50 ms within 1% of 1.0 s, {grid}", "seconds": seconds,
                    "met": None if seconds is None else seconds <= 1.01})
    return out


def array_targets(best):
    """Issue 14's targets for the numeric arrays."""
    out = []
    for workload, what in (("push_array", "push"), ("pull_array", "pull")):
        out.append(at_least(best, f"{what} of 100 MB, local", "grid-local", workload,
                            "mb_per_s", "MB/s", 3000))
        out.append(against_fastest(best, f"{what} of 100 MB, local, against the fastest peer",
                                   "grid-local", workload, "mb_per_s", True, 2))
        out.append(against_fastest(best, f"{what} of 100 MB, NATS, against the fastest peer",
                                   "grid-nats", workload, "mb_per_s", True, 1))
    for figure, what in (("scatter_s", "scatter"), ("gather_s", "gather")):
        out.append(against_ipyparallel(best, f"{what} of 10,000,000 float64, local", "grid-local",
                                       "scatter_gather_array", figure, False, 5))
    out.append(at_least(best, "sum over 1,000 chunks, local", "grid-local", "sum_map",
                        "items_per_s", "items/s", 20_000_000))
    return out


def against_ipyparallel(best, name, grid, workload, figure, up, wanted):
    """A target of Grid `wanted` times ipyparallel, with Dask and Ray beside."""
    r = ratio(value_of(best, grid, workload, figure),
              value_of(best, "ipyparallel", workload, figure), up)
    others = {p: ratio(value_of(best, grid, workload, figure),
                       value_of(best, p, workload, figure), up) for p in ("dask", "ray")}
    return {"target": name, "wanted_x": wanted, "vs_ipyparallel_x": r,
            "vs_dask_x": others["dask"], "vs_ray_x": others["ray"],
            "met": None if r is None else r >= wanted}


def against_fastest(best, name, grid, workload, figure, up, wanted):
    """A target of Grid `wanted` times the best of the peers measured."""
    ratios = {p: ratio(value_of(best, grid, workload, figure), value_of(best, p, workload, figure),
                       up) for p in PEERS}
    measured = {p: r for p, r in ratios.items() if r is not None}
    fastest = min(measured, key=measured.get) if measured else None
    r = measured.get(fastest)
    return {"target": name, "wanted_x": wanted, "fastest_peer": fastest, "vs_fastest_peer_x": r,
            "met": None if r is None else r >= wanted}


def at_least(best, name, grid, workload, figure, unit, wanted):
    """A target of an absolute figure for Grid (higher is better)."""
    value = value_of(best, grid, workload, figure)
    return {"target": name, "value": value, "unit": unit, "wanted_at_least": wanted,
            "met": None if value is None else value >= wanted}


def print_targets(checks, issue):
    print()
    print(f"targets ({issue}), Grid against ipyparallel (Dask and Ray beside):")
    for check in checks:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        if "seconds" in check:
            print(f"  {check['target']}: {fmt(check['seconds'])} s -> {verdict}")
            continue
        if "wanted_at_least" in check:
            print(f"  {check['target']}: {fmt(check['value'])} {check['unit']} "
                  f"(want >= {fmt(check['wanted_at_least'])}) -> {verdict}")
            continue
        if "fastest_peer" in check:
            got = "-" if check["vs_fastest_peer_x"] is None else (
                f"{fmt_x(check['vs_fastest_peer_x'])} {check['fastest_peer']}")
            print(f"  {check['target']}: {got} (want >= {check['wanted_x']}x) -> {verdict}")
            continue
        extra = ", ".join(f"{p} {fmt_x(check[f'vs_{p}_x'])}" for p in ("dask", "ray")
                          if check[f"vs_{p}_x"] is not None)
        got = fmt_x(check["vs_ipyparallel_x"])
        print(f"  {check['target']}: {got} (want >= {check['wanted_x']}x) -> {verdict}"
              + (f"  [{extra}]" if extra else ""))


def machine():
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


if __name__ == "__main__":
    main()
