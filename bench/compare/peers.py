"""Benchmark runner for Grid's Python peers: ipyparallel, Dask distributed, Ray.

Grid is measured against the systems a user would otherwise reach for. This
program drives one of them through the same workloads as Grid's own cluster
bench, on a local cluster of 2 workers, and reports figures as JSON lines; the
orchestrator (`bench/compare/__main__.py`, run as `python3 bench/compare`) runs it once per system and puts the
figures next to Grid's.

Protocol:

    peers.py --system {ipyparallel|dask|ray} [--tasks N (10000)] [--calls K (2000)]

1. Starts the cluster and prints `{"event": "ready", "figures": {"start_s": S}}`,
   S timed from just before the start call until both workers are usable.
   If the cluster cannot start it prints
   `{"event": "error", "workload": "start", "message": ...}` and exits 1.
2. Reads workload names from stdin, one per line. Each prints one line
   `{"event": "done", "workload": NAME, "figures": {...}}`, or
   `{"event": "error", "workload": NAME, "message": ...}` and carries on.
3. On `quit`, EOF or SIGTERM it shuts the cluster down and exits 0.

stdout carries nothing but these lines: file descriptor 1 is pointed at stderr
at startup, so whatever the libraries or their child processes print lands on
stderr. The function is `square(x) = x * x` on integers, but for the numeric
arrays of the orchestrator's `--arrays`.

Workloads, and how each maps onto each library:

- `apply_lb` (p50_us, p99_us, calls_per_s): K blocking calls after 100
  warm-up calls, each timed; percentiles are nearest-rank on the sorted samples,
  as Grid's bench takes them. ipyparallel `lview.apply_sync(square, 3)`; Dask
  `client.submit(square, 3, pure=False).result()`; Ray
  `ray.get(square_task.remote(3))`.
- `apply_direct`: the same, pinned to worker 0. ipyparallel
  `rc[0].apply_sync`; Dask `submit(..., workers=[addr0])`; Ray has no way to send
  a stateless task to a chosen worker, so each worker is an actor (`Engine`,
  with square/set/get) and this calls `actor0.square.remote(3)`.
- `map1` (tasks_per_s, seconds): N tasks of one item each. ipyparallel
  `lview.map_sync(square, range(N))`; Dask `client.map` then `gather`; Ray N
  `square_task.remote(i)` then one `ray.get`.
- `map100`: N items in tasks of 100. ipyparallel `map_sync(chunksize=100)`;
  Dask and Ray have no chunksize, so N/100 tasks each square a list of 100
  items and the results are flattened here.
- `async`: N single submissions, then wait for all. ipyparallel
  `lview.apply_async` per item and `.get()` each; Dask `client.submit` per item
  and `gather`; Ray N `.remote` calls and `ray.get`, which is the same code as
  `map1`: Ray has no separate map.
- `dag` (tasks_per_s, seconds): N squares, task i after up to two earlier
  tasks (the fixed graph of `dag.py`, the same Grid runs), all submitted at
  once, then wait for all. ipyparallel `lview.apply(square, i)` inside
  `lview.temp_flags(after=[parents' AsyncResults])`; Dask
  `client.submit(square_after, i, *parent_futures)`, so the scheduler holds
  each task until its parents' results exist (the results travel to the
  task, which ignores them); Ray `square_after_task.remote(i, *parent_refs)`,
  likewise.
- `push` (mb_per_s, seconds; median of 5 rounds of fresh 10 MB `bytes`):
  ipyparallel `rc[0].push({'big': data}, block=True)`; Ray
  `ray.get(actor0.set.remote('big', data))`; Dask has no worker namespace, and
  its nearest equivalent is `client.scatter(data, workers=[addr0], direct=True)`,
  which returns once the worker holds the data. It is called with `hash=False`:
  the default hashes the content to name the key, which takes about 0.19 s per
  10 MB on our 2-core VM and would measure dask's tokenizer, not data movement.
- `pull`: stores one fresh 10 MB value (untimed, so the workload stands alone),
  then fetches it 5 times: ipyparallel `rc[0].pull('big', block=True)`; Dask
  `client.gather` on the scattered future; Ray `ray.get(actor0.get.remote('big'))`.
- `scatter_gather` (scatter_s, gather_s, items_per_s): `list(range(1_000_000))`
  split over the 2 workers and back. ipyparallel `dview.scatter('x', ...)` and
  `dview.gather('x')`; Dask scatters each half to its own worker (wrapped in a
  one-element list, since scatter of a list scatters every element; `hash=False`
  as for push) and gathers both; Ray `actor_i.set.remote('x', half_i)`, then
  `actor_i.get.remote('x')` and concatenation. Dask is slow here by its own
  design: because msgpack precedes pickle in its comm serializers, it sends a
  Python list element by element (tens of microseconds per item); a tuple would
  be pickled whole, but the workload is a list, as a user would write it.
- `sleep40` (seconds, ideal_s, overhead_pct): 40 load-balanced tasks sleeping
  50 ms on 2 workers, so ideal 1.0 s. ipyparallel `lview.map_sync`; Dask 40
  `submit`; Ray 40 `sleep_task.remote`.
- `push_array` (mb_per_s, seconds; median of 5 rounds): a fresh numpy
  float64 array of 100 MB (12,500,000 numbers, `floats` below, the same
  numbers Grid sends as a typed array) through `push` as above: ipyparallel
  sends its buffer without pickling it (zero-copy), Ray puts an argument that
  large in its object store and the actor keeps a view of it, Dask pickles
  it with out-of-band buffers.
- `pull_array`: `pull` of such an array, pushed once untimed, then compared
  with `numpy.array_equal`. Ray's `ray.get` of an array maps it from the
  object store without a copy.
- `scatter_gather_array` (scatter_s, gather_s, items_per_s): 10,000,000
  float64 in one numpy array, split over the 2 workers and back, as
  `scatter_gather` does, then joined with `numpy.concatenate` (ipyparallel's
  `dview.gather` joins numpy parts itself).
- `sum_map` (items_per_s, seconds): `sum_chunk` (numpy's sum) over 1,000
  views of 10,000 float64 each (split before the clock starts), one task per
  chunk, through each system's own map: ipyparallel `lview.map_sync`; Dask
  `client.map` then `gather`; Ray `sum_task.remote` per chunk then one
  `ray.get` (each argument, 80 KB, goes inline with its task). Each sum is
  checked against one made here.
- `rss` (client_mb, controller_mb, engine_mb): peak resident memory (VmHWM, MB
  = bytes / 1e6) since each process started; the orchestrator asks for it right
  after `map1`. The judgement calls: ipyparallel's controller is the
  ipcontroller process, whose schedulers run in child processes of their own, so
  `controller_total_mb` adds the peaks of that whole tree. Dask's LocalCluster
  runs the scheduler (and the nannies) inside the client process, so
  `controller_mb` is the client's, with `controller_note` saying so; the engine
  is a worker process. Ray's controller is the gcs_server, with `raylet_mb` for
  the raylet; the engine is a task worker, since those ran `map1` (the actors
  did not).

Ray counts as 2 workers with `num_cpus=2`: tasks run in up to 2 task worker
processes, and the 2 actors (which hold no CPU once placed) in 2 more.
"""

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import time
import traceback

import numpy as np
import psutil

from dag import parents as dag_parents

WARMUP_CALLS = 100
WORKERS = 2
CHUNK = 100
BIG_BYTES = 10_000_000
TRANSFER_ROUNDS = 5
SCATTER_ITEMS = 1_000_000
SLEEP_TASKS = 40
# The `--arrays` workloads, in float64 numbers: as Grid's `ArraySizes::FULL`.
ARRAY_FLOATS = 12_500_000
SCATTER_FLOATS = 10_000_000
SUM_CHUNKS = 1_000
SUM_CHUNK = 10_000
SLEEP_S = 0.05
STOP_TIMEOUT_S = 10

# The functions the workers run. ipyparallel runs a function against the
# engine's own namespace, not this module's, so whatever a function needs it
# imports itself.


def square(x):
    return x * x


def square_after(x, *parents):
    """`square(x)`, as a task that takes its parents' results (and ignores them)."""
    return x * x


def square_chunk(xs):
    return [square(x) for x in xs]


def sum_chunk(xs):
    return float(xs.sum())


def sleep_for(seconds):
    import time

    time.sleep(seconds)


def worker_pid():
    import os

    return os.getpid()


class Engine:
    """Ray's stand-in for a Grid engine: one actor per worker, with a namespace."""

    def __init__(self):
        self.namespace = {}

    def square(self, x):
        return square(x)

    def set(self, name, value):
        self.namespace[name] = value

    def get(self, name):
        return self.namespace[name]


class WrongResult(Exception):
    pass


def peak_rss_mb(pid):
    """VmHWM of a process, in MB (bytes / 1e6)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for pid {pid}")


def descendant_pid(name):
    """The one process below this one whose executable is called `name`."""
    found = [p.pid for p in psutil.Process().children(recursive=True) if p.name() == name]
    if len(found) != 1:
        raise RuntimeError(f"expected one {name} process below this one, found {found}")
    return found[0]


# One class per system. Each starts and stops its cluster and offers the
# primitives the workloads time: apply_lb, apply_direct, map1, map100,
# submit_all, dag, push, pull, scatter, gather, gather_array, map_sum,
# sleep_many, and rss for the figures only the system knows. The libraries are imported in start(), not at the top:
# Dask's worker processes re-import this file, and should not load the others.


class Ipyparallel:
    """A controller and 2 engines from ipyparallel.Cluster, on this machine."""

    def __init__(self):
        self.cluster = self.rc = None

    def start(self):
        import ipyparallel

        self.cluster = ipyparallel.Cluster(n=WORKERS, log_level=logging.WARNING)
        # Waits until the client sees WORKERS engines registered.
        self.rc = self.cluster.start_and_connect_sync()
        self.lview = self.rc.load_balanced_view()
        self.engine0 = self.rc[0]
        self.dview = self.rc[:]

    def stop(self):
        if self.rc is not None:
            self.rc.close()
        if self.cluster is not None:
            # Each engine has a nanny child that outlives it, telling the
            # controller the engine is gone (up to 3 s if the controller is
            # already down). So engines stop first, and then we wait for every
            # process the cluster started.
            started = psutil.Process().children(recursive=True)
            self.cluster.stop_engines_sync()
            self.cluster.stop_controller_sync()
            _, alive = psutil.wait_procs(started, timeout=STOP_TIMEOUT_S)
            for process in alive:
                print(f"killing leftover process {process.pid}", file=sys.stderr)
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass

    def apply_lb(self):
        return self.lview.apply_sync(square, 3)

    def apply_direct(self):
        return self.engine0.apply_sync(square, 3)

    def map1(self, n):
        return self.lview.map_sync(square, range(n))

    def map100(self, n):
        return self.lview.map_sync(square, range(n), chunksize=CHUNK)

    def submit_all(self, n):
        pending = [self.lview.apply_async(square, i) for i in range(n)]
        return [ar.get() for ar in pending]

    def dag(self, n):
        pending = []
        for i in range(n):
            with self.lview.temp_flags(after=[pending[p] for p in dag_parents(i)]):
                pending.append(self.lview.apply(square, i))
        return [ar.get() for ar in pending]

    def push(self, data):
        self.engine0.push({"big": data}, block=True)

    def pull(self):
        return self.engine0.pull("big", block=True)

    def scatter(self, items):
        self.dview.scatter("x", items, block=True)

    def gather(self):
        return self.dview.gather("x", block=True)

    def gather_array(self):
        return self.dview.gather("x", block=True)

    def map_sum(self, chunks):
        return self.lview.map_sync(sum_chunk, chunks)

    def sleep_many(self, seconds, count):
        return self.lview.map_sync(sleep_for, [seconds] * count)

    def rss(self):
        controller = psutil.Process(self.cluster.controller.pid)
        tree = [controller] + controller.children(recursive=True)
        return {
            "controller_mb": peak_rss_mb(controller.pid),
            "controller_total_mb": sum(peak_rss_mb(p.pid) for p in tree),
            "engine_mb": peak_rss_mb(self.engine0.apply_sync(worker_pid)),
        }


class Dask:
    """A LocalCluster of 2 single-threaded worker processes."""

    def __init__(self):
        self.cluster = self.client = None

    def start(self):
        import distributed

        self.cluster = distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, dashboard_address=None
        )
        self.client = distributed.Client(self.cluster)
        self.client.wait_for_workers(WORKERS)
        self.addrs = sorted(self.client.scheduler_info()["workers"])
        self.big = self.halves = None

    def stop(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def apply_lb(self):
        return self.client.submit(square, 3, pure=False).result()

    def apply_direct(self):
        return self.client.submit(square, 3, pure=False, workers=[self.addrs[0]]).result()

    def map1(self, n):
        return self.client.gather(self.client.map(square, range(n), pure=False))

    def map100(self, n):
        chunks = [list(range(i, min(i + CHUNK, n))) for i in range(0, n, CHUNK)]
        results = self.client.gather(self.client.map(square_chunk, chunks, pure=False))
        return [y for chunk in results for y in chunk]

    def submit_all(self, n):
        return self.client.gather([self.client.submit(square, i, pure=False) for i in range(n)])

    def dag(self, n):
        futures = []
        for i in range(n):
            parents = [futures[p] for p in dag_parents(i)]
            futures.append(self.client.submit(square_after, i, *parents, pure=False))
        return self.client.gather(futures)

    def push(self, data):
        # hash=False: the default hashes the content to name the key (see above).
        self.big = self.client.scatter(data, workers=[self.addrs[0]], direct=True, hash=False)

    def pull(self):
        return self.client.gather(self.big)

    def scatter(self, items):
        middle = len(items) // 2
        # Each half in a list of its own: scatter sends a list's elements apart.
        self.halves = [
            self.client.scatter([half], workers=[addr], direct=True, hash=False)[0]
            for half, addr in zip([items[:middle], items[middle:]], self.addrs)
        ]

    def gather(self):
        return [x for half in self.client.gather(self.halves) for x in half]

    def gather_array(self):
        return np.concatenate(self.client.gather(self.halves))

    def map_sum(self, chunks):
        return self.client.gather(self.client.map(sum_chunk, chunks, pure=False))

    def sleep_many(self, seconds, count):
        return self.client.gather(
            [self.client.submit(sleep_for, seconds, pure=False) for _ in range(count)]
        )

    def rss(self):
        pid = self.client.run(worker_pid, workers=[self.addrs[0]])[self.addrs[0]]
        return {
            "controller_mb": peak_rss_mb(os.getpid()),
            "controller_note": "in the client process",
            "engine_mb": peak_rss_mb(pid),
        }


class Ray:
    """A local Ray instance with 2 CPUs, and one Engine actor per CPU."""

    def __init__(self):
        self.ray = None

    def start(self):
        # No usage-stats reporting from inside a benchmark.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        ray.init(
            num_cpus=WORKERS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            # The default is 30% of RAM; the array workloads hold a few
            # 100 MB objects at once, and a full store would spill to disk.
            object_store_memory=1_500_000_000,
        )
        self.ray = ray
        self.square_task = ray.remote(square)
        self.after_task = ray.remote(square_after)
        self.chunk_task = ray.remote(square_chunk)
        self.sleep_task = ray.remote(sleep_for)
        self.sum_task = ray.remote(sum_chunk)
        self.pid_task = ray.remote(worker_pid)
        engine = ray.remote(Engine)
        self.actors = [engine.remote() for _ in range(WORKERS)]
        ray.get([actor.square.remote(0) for actor in self.actors])

    def stop(self):
        if self.ray is not None:
            self.ray.shutdown()

    def apply_lb(self):
        return self.ray.get(self.square_task.remote(3))

    def apply_direct(self):
        return self.ray.get(self.actors[0].square.remote(3))

    def map1(self, n):
        return self.ray.get([self.square_task.remote(i) for i in range(n)])

    def map100(self, n):
        chunks = [list(range(i, min(i + CHUNK, n))) for i in range(0, n, CHUNK)]
        results = self.ray.get([self.chunk_task.remote(chunk) for chunk in chunks])
        return [y for chunk in results for y in chunk]

    def submit_all(self, n):
        refs = [self.square_task.remote(i) for i in range(n)]
        return self.ray.get(refs)

    def dag(self, n):
        refs = []
        for i in range(n):
            refs.append(self.after_task.remote(i, *[refs[p] for p in dag_parents(i)]))
        return self.ray.get(refs)

    def push(self, data):
        self.ray.get(self.actors[0].set.remote("big", data))

    def pull(self):
        return self.ray.get(self.actors[0].get.remote("big"))

    def scatter(self, items):
        middle = len(items) // 2
        halves = [items[:middle], items[middle:]]
        self.ray.get([actor.set.remote("x", half) for actor, half in zip(self.actors, halves)])

    def gather(self):
        halves = self.ray.get([actor.get.remote("x") for actor in self.actors])
        return [x for half in halves for x in half]

    def gather_array(self):
        return np.concatenate(self.ray.get([actor.get.remote("x") for actor in self.actors]))

    def map_sum(self, chunks):
        return self.ray.get([self.sum_task.remote(chunk) for chunk in chunks])

    def sleep_many(self, seconds, count):
        return self.ray.get([self.sleep_task.remote(seconds) for _ in range(count)])

    def rss(self):
        return {
            "controller_mb": peak_rss_mb(descendant_pid("gcs_server")),
            "raylet_mb": peak_rss_mb(descendant_pid("raylet")),
            "engine_mb": peak_rss_mb(self.ray.get(self.pid_task.remote())),
        }


SYSTEMS = {"ipyparallel": Ipyparallel, "dask": Dask, "ray": Ray}


# Workloads: each drives a system through its primitives and returns figures.


def round_trips(call, calls):
    for _ in range(WARMUP_CALLS):
        call()
    samples = []
    started = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - t)
        if result != 9:
            raise WrongResult(f"square(3) returned {result!r}")
    total = time.perf_counter() - started
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[len(samples) * 99 // 100] * 1e6,
        "calls_per_s": calls / total,
    }


def throughput(run, n):
    started = time.perf_counter()
    results = run(n)
    seconds = time.perf_counter() - started
    if list(results) != [square(i) for i in range(n)]:
        raise WrongResult(f"results are not the squares of 0..{n}")
    return {"tasks_per_s": n / seconds, "seconds": seconds}


def transfer(seconds, size):
    median = statistics.median(seconds)
    return {"mb_per_s": size / 1e6 / median, "seconds": median}


def timed_pushes(system, make):
    """Pushes `make(round)` each round; the median rate."""
    seconds = []
    for round in range(TRANSFER_ROUNDS):
        data = make(round)
        started = time.perf_counter()
        system.push(data)
        seconds.append(time.perf_counter() - started)
    return transfer(seconds, memoryview(data).nbytes)


def timed_pulls(system, data, wrong):
    """Pushes `data` once, pulls it each round; `wrong(pulled)` says what
    is wrong with a pulled value, or nothing. The median rate."""
    system.push(data)
    seconds = []
    for _ in range(TRANSFER_ROUNDS):
        started = time.perf_counter()
        pulled = system.pull()
        seconds.append(time.perf_counter() - started)
        why = wrong(pulled)
        if why:
            raise WrongResult(why)
    return transfer(seconds, memoryview(data).nbytes)


def push(system, args):
    return timed_pushes(system, lambda _: os.urandom(BIG_BYTES))


def pull(system, args):
    data = os.urandom(BIG_BYTES)
    return timed_pulls(
        system,
        data,
        lambda pulled: None
        if len(pulled) == BIG_BYTES and pulled == data
        else f"pulled {len(pulled)} bytes, not the {BIG_BYTES} pushed",
    )


def scatter_gather(system, args):
    items = list(range(SCATTER_ITEMS))
    started = time.perf_counter()
    system.scatter(items)
    scattered = time.perf_counter()
    gathered = system.gather()
    done = time.perf_counter()
    if gathered != items:
        raise WrongResult("gathered list differs from the scattered one")
    scatter_s, gather_s = scattered - started, done - scattered
    return {
        "scatter_s": scatter_s,
        "gather_s": gather_s,
        "items_per_s": SCATTER_ITEMS / (scatter_s + gather_s),
    }


def floats(n, round):
    """`i / 4 + round` for i in 0..n, as float64: Grid's `floats` too."""
    return np.arange(n, dtype=np.float64) * 0.25 + round


def push_array(system, args):
    return timed_pushes(system, lambda round: floats(ARRAY_FLOATS, round))


def pull_array(system, args):
    data = floats(ARRAY_FLOATS, 100)
    return timed_pulls(
        system,
        data,
        lambda pulled: None
        if np.array_equal(pulled, data)
        else "the pulled array differs from the pushed one",
    )


def scatter_gather_array(system, args):
    data = floats(SCATTER_FLOATS, 0)
    started = time.perf_counter()
    system.scatter(data)
    scattered = time.perf_counter()
    gathered = system.gather_array()
    done = time.perf_counter()
    if not np.array_equal(gathered, data):
        raise WrongResult("the gathered array differs from the scattered one")
    scatter_s, gather_s = scattered - started, done - scattered
    return {
        "scatter_s": scatter_s,
        "gather_s": gather_s,
        "items_per_s": len(data) / (scatter_s + gather_s),
    }


def sum_map(system, args):
    chunks = np.split(floats(SUM_CHUNKS * SUM_CHUNK, 0), SUM_CHUNKS)
    expected = [sum_chunk(chunk) for chunk in chunks]
    started = time.perf_counter()
    sums = system.map_sum(chunks)
    seconds = time.perf_counter() - started
    if len(sums) != len(expected) or not np.allclose(sums, expected, rtol=1e-12, atol=0):
        raise WrongResult("the sums differ from numpy's here")
    return {"items_per_s": SUM_CHUNKS * SUM_CHUNK / seconds, "seconds": seconds}


def sleep40(system, args):
    ideal_s = SLEEP_TASKS * SLEEP_S / WORKERS
    started = time.perf_counter()
    system.sleep_many(SLEEP_S, SLEEP_TASKS)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "ideal_s": ideal_s, "overhead_pct": (seconds / ideal_s - 1) * 100}


def rss(system, args):
    return {"client_mb": peak_rss_mb(os.getpid()), **system.rss()}


WORKLOADS = {
    "apply_lb": lambda system, args: round_trips(system.apply_lb, args.calls),
    "apply_direct": lambda system, args: round_trips(system.apply_direct, args.calls),
    "map1": lambda system, args: throughput(system.map1, args.tasks),
    "map100": lambda system, args: throughput(system.map100, args.tasks),
    "async": lambda system, args: throughput(system.submit_all, args.tasks),
    "dag": lambda system, args: throughput(system.dag, args.tasks),
    "push": push,
    "pull": pull,
    "scatter_gather": scatter_gather,
    "push_array": push_array,
    "pull_array": pull_array,
    "scatter_gather_array": scatter_gather_array,
    "sum_map": sum_map,
    "sleep40": sleep40,
    "rss": rss,
}


def claim_stdout():
    """Return a stream on the real stdout and point fd 1 at stderr, so nothing
    the libraries or the processes they spawn print can break the JSON lines."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return protocol


def stop_on_sigterm(signum, frame):
    raise SystemExit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", required=True, choices=sorted(SYSTEMS))
    parser.add_argument("--tasks", type=int, default=10_000, help="N for map1, map100, async, dag")
    parser.add_argument("--calls", type=int, default=2_000, help="K timed calls for apply_*")
    args = parser.parse_args()

    protocol = claim_stdout()

    def emit(event):
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    system = SYSTEMS[args.system]()
    try:
        started = time.perf_counter()
        try:
            system.start()
        except Exception as e:
            emit({"event": "error", "workload": "start", "message": f"{type(e).__name__}: {e}"})
            raise
        emit({"event": "ready", "figures": {"start_s": time.perf_counter() - started}})
        # ray.init replaces our handler with one that exits with status 15.
        signal.signal(signal.SIGTERM, stop_on_sigterm)

        for line in sys.stdin:
            name = line.strip()
            if name == "quit":
                break
            if not name:
                continue
            try:
                if name not in WORKLOADS:
                    raise KeyError(f"unknown workload; known: {', '.join(WORKLOADS)}")
                figures = WORKLOADS[name](system, args)
            except Exception as e:
                print(f"{name} failed:", file=sys.stderr)
                traceback.print_exc()
                emit({"event": "error", "workload": name, "message": f"{type(e).__name__}: {e}"})
            else:
                emit({"event": "done", "workload": name, "figures": figures})
    finally:
        system.stop()


if __name__ == "__main__":
    main()
