"""`python3 bench/imap_memory.py`: the client's memory over a huge `grid map`.

Issue 10 asks that `seq 1 100000000 | grid map m.wasm square --chunksize
1000` run in constant memory, under 64 MiB RSS for the client (ipyparallel's
client grew to 376 MiB after 10,000 tasks on this machine). This script
builds `grid` in release mode (`--no-build` skips it), then for each size
(`--sizes`, by default 10^5 .. 10^8 items) pipes `seq 1 N` into `grid map`
on the embedded local cluster (the client, the controller and the engines
are one process, so its RSS bounds the client's), samples that process's
VmRSS every 100 ms from /proc, and prints the curve: items, seconds, items
per second, peak RSS (VmHWM) and RSS at each tenth of the run. It checks
the output's line count and sum (the sum of squares has a closed form).
`--json FILE` writes the figures too.

It measures only Grid; the ipyparallel figure is the issue's, from an
earlier run on this machine.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_MIB = 64


def rss_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run(grid, n, chunksize, engines):
    seq = subprocess.Popen(["seq", "1", str(n)], stdout=subprocess.PIPE)
    started = time.monotonic()
    cmd = [grid, "map", os.path.join(ROOT, "examples/guests/wat/square.wat"), "square",
           "--chunksize", str(chunksize), "--engines", str(engines), "--output", "none"]
    proc = subprocess.Popen(cmd, stdin=seq.stdout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seq.stdout.close()
    samples = []
    peak = [0]

    def sample():
        while proc.poll() is None:
            rss = rss_kib(proc.pid, "VmRSS")
            hwm = rss_kib(proc.pid, "VmHWM")
            if rss is not None:
                samples.append((time.monotonic() - started, rss))
            if hwm is not None:
                peak[0] = max(peak[0], hwm)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    lines = 0
    total = 0
    for line in proc.stdout:
        lines += 1
        total += int(line)
    err = proc.stderr.read().decode(errors="replace")
    proc.wait()
    sampler.join()
    elapsed = time.monotonic() - started
    expected = n * (n + 1) * (2 * n + 1) // 6
    ok = proc.returncode == 0 and lines == n and total == expected
    if not ok:
        print(f"  FAILED: exit {proc.returncode}, {lines} lines, sum ok: {total == expected}\n{err}",
              file=sys.stderr)
    curve = []
    if samples:
        for k in range(1, 11):
            t = elapsed * k / 10
            before = [rss for (at, rss) in samples if at <= t]
            curve.append(round((before[-1] if before else samples[0][1]) / 1024, 1))
    return {
        "items": n,
        "seconds": round(elapsed, 2),
        "items_per_second": round(n / elapsed),
        "peak_rss_mib": round(peak[0] / 1024, 1),
        "rss_curve_mib": curve,
        "ok": ok,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000,100000000")
    parser.add_argument("--chunksize", type=int, default=1000)
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "grid-cli"], cwd=ROOT, check=True)
    grid = os.path.join(ROOT, "target/release/grid")
    figures = []
    print(f"{'items':>12} {'seconds':>9} {'items/s':>11} {'peak RSS':>10}  RSS at each tenth (MiB)")
    for n in [int(s) for s in args.sizes.split(",")]:
        f = run(grid, n, args.chunksize, args.engines)
        figures.append(f)
        print(f"{f['items']:>12,} {f['seconds']:>9} {f['items_per_second']:>11,} "
              f"{f['peak_rss_mib']:>7} MiB  {f['rss_curve_mib']}", flush=True)
    worst = max(f["peak_rss_mib"] for f in figures)
    verdict = "met" if worst < LIMIT_MIB and all(f["ok"] for f in figures) else "MISSED"
    print(f"target: peak client RSS under {LIMIT_MIB} MiB at every size: {verdict} "
          f"(worst {worst} MiB; ipyparallel's client: 376 MiB after 10,000 tasks)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    sys.exit(0 if verdict == "met" else 1)


if __name__ == "__main__":
    main()
