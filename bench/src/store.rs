//! `store-bench`: what the controller's task store costs, in speed and in
//! memory, with real `grid controller` and `grid engine` processes on a
//! private nats-server and this process as their client (`Client::connect`).
//!
//! `throughput` times a load-balanced map of unchunked trivial tasks
//! (`square` of `examples/guests/wat/square.wat`, cluster-bench's
//! `unchunked` figure) on a controller with the in-memory store and on one
//! with the SQLite store (`--db`, a fresh file each round), alternately, so
//! that the machine's noise hits both alike; each run also times how long
//! the store takes to have recorded every task (no pending record left),
//! so a writer that falls behind shows. It prints each round's tasks/s, the
//! best and median of each store and the ratio sqlite/memory of the
//! medians; target (issue 13): >= 0.90. `soak` runs N tasks through one
//! controller in maps of 10,000 (`--batch`: the tasks in flight at once)
//! and samples the controller's resident memory every second and at
//! 10,000, 100,000 and every 100,000 tasks after; target: RSS at the end
//! <= ~1.1x RSS after 10,000 tasks (memory does not grow with the tasks a
//! controller has seen); it also prints end / after 100,000, once the
//! store's own bounds (records kept, SQLite's page cache) have filled. The
//! controller's malloc keeps what it frees (`tune_allocator` trims only past
//! 128 MiB), so its RSS reads close to its heap's peak.
//!
//! ```text
//! cargo build --release -p grid-cli -p grid-bench
//! cargo run --release -p grid-bench --bin store-bench -- throughput [--rounds 3] [--tasks 10000]
//! cargo run --release -p grid-bench --bin store-bench -- soak [--tasks 1000000] [--batch 10000] [--db]
//! ```
//!
//! The `grid` binary is the one beside this program (`target/release/grid`).
//! Every process started is killed when the run ends, on an error too. Its
//! CI pass is this file's unit tests: both modes, tiny, on the debug build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use grid_bus::testing::NatsServer;
use grid_client::{Client, Function, RecordKey, RecordStatus, TaskFilter, Value};

type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: store-bench throughput [--rounds N] [--tasks N]\n       \
                     store-bench soak [--tasks N] [--batch N] [--db]";

/// Only runs out when something is wrong: a process that does not come
/// up, or a store that does not catch up.
const DEADLINE: Duration = Duration::from_secs(120);

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(5);

/// Slots of the one engine process.
const SLOTS: usize = 2;

/// Tasks per map in the soak, by default.
const SOAK_BATCH: usize = 10_000;

/// The throughput target: sqlite/memory of the medians.
const RATIO_TARGET: f64 = 0.90;

/// The soak target: RSS at the end / RSS after 10,000 tasks (or the first
/// row, in a smaller run).
const GROWTH_TARGET: f64 = 1.10;

fn main() {
    // As the `grid` binary does.
    grid_bus::tune_allocator();
    if let Err(error) = run() {
        eprintln!("store-bench: {error}");
        std::process::exit(1);
    }
}

fn run() -> Outcome<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or(USAGE)?;
    match mode.as_str() {
        "throughput" | "soak" => {}
        "-h" | "--help" => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => return Err(format!("unknown mode {mode:?}\n{USAGE}").into()),
    }
    let (mut rounds, mut tasks, mut batch, mut db) = (3usize, None, SOAK_BATCH, false);
    while let Some(arg) = args.next() {
        let mut number = || -> Outcome<usize> {
            let text = args.next().ok_or(USAGE)?;
            let n = text.replace(['_', ','], "").parse();
            Ok(n.map_err(|_| format!("{arg} wants a number, not {text:?}"))?)
        };
        match arg.as_str() {
            "--rounds" if mode == "throughput" => rounds = number()?,
            "--tasks" => tasks = Some(number()?),
            "--batch" if mode == "soak" => batch = number()?.max(1),
            "--db" if mode == "soak" => db = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}").into()),
        }
    }
    let grid = grid_binary()?;
    let server = NatsServer::start()?;
    if mode == "throughput" {
        let tasks = tasks.unwrap_or(10_000).max(1);
        throughput(&grid, &server.url(), rounds.max(1), tasks)?;
    } else {
        let store = if db { Store::Sqlite } else { Store::Memory };
        soak(
            &grid,
            &server.url(),
            tasks.unwrap_or(1_000_000),
            batch,
            store,
        )?;
    }
    Ok(())
}

/// `grid` beside this program (or beside `deps/`, for a test binary).
fn grid_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    let grid = dir.join("grid");
    if grid.is_file() {
        return Ok(grid);
    }
    let release = if dir.file_name().is_some_and(|name| name == "release") {
        " --release"
    } else {
        ""
    };
    Err(format!(
        "{} not found: build it first with `cargo build{release} -p grid-cli`",
        grid.display()
    ))
}

/// The controller's task store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Memory,
    /// An SQLite file (`grid controller --db PATH`).
    Sqlite,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Sqlite => "sqlite",
        }
    }
}

/// Processes this program started; dropping it kills them.
struct Processes(Vec<(&'static str, Child)>);

impl Processes {
    /// The role of the first that has exited, with its exit status.
    fn exited(&mut self) -> Option<String> {
        self.0
            .iter_mut()
            .find_map(|(role, child)| match child.try_wait() {
                Ok(Some(status)) => Some(format!("the {role} exited ({status})")),
                Ok(None) | Err(_) => None,
            })
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A cluster under test: a controller process with `store`, an engine
/// process of [`SLOTS`] slots, and a client of it in this process. Dropping
/// it kills the processes, then removes its directory (logs, SQLite file).
struct Cluster {
    // Fields drop in this order: the client, the processes, the directory.
    client: Client,
    square: Function,
    processes: Processes,
    controller_pid: u32,
    db: Option<PathBuf>,
    /// Held to be removed last.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts cluster `name` on the server at `url`; engines compile into
    /// (or load from) `cache`. Returns once both slots are registered and
    /// have run `square` once.
    fn start(grid: &Path, url: &str, name: &str, store: Store, cache: &Path) -> Outcome<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("grid-store-bench-")
            .tempdir()?;
        let db = (store == Store::Sqlite).then(|| dir.path().join("tasks.db"));
        let mut processes = Processes(Vec::new());
        let mut controller = vec!["controller", "--url", url, "--cluster", name];
        let db_arg = db.as_ref().map(|p| p.display().to_string());
        if let Some(path) = &db_arg {
            controller.extend(["--db", path.as_str()]);
        }
        let child = spawn(grid, &controller, cache, &dir.path().join("controller.log"))?;
        let controller_pid = child.id();
        processes.0.push(("controller", child));
        let client = Client::connect(url, name)?;
        // The error, then the last lines each process logged.
        let logs = |what: &str| {
            let mut message = what.to_string();
            for role in ["controller", "engine"] {
                let path = dir.path().join(format!("{role}.log"));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                for line in &lines[lines.len().saturating_sub(5)..] {
                    message += &format!("\n  {role}: {line}");
                }
            }
            message
        };
        wait_for(&mut processes, || client.engines().is_ok())
            .map_err(|why| logs(&format!("the controller did not come up: {why}")))?;
        let slots = SLOTS.to_string();
        let engine = ["engine", "--url", url, "--cluster", name, "-n", &slots];
        let child = spawn(grid, &engine, cache, &dir.path().join("engine.log"))?;
        processes.0.push(("engine", child));
        wait_for(&mut processes, || {
            client.ids().is_ok_and(|ids| ids.len() == SLOTS)
        })
        .map_err(|why| logs(&format!("the engines did not register: {why}")))?;
        let square = client
            .load_module(grid_examples::wat_square())?
            .func("square");
        // Each slot compiles (or loads) the module before anything is timed.
        client.view_all()?.apply_sync(&square, [Value::from(0)])?;
        Ok(Cluster {
            client,
            square,
            processes,
            controller_pid,
            db,
            _dir: dir,
        })
    }

    /// A load-balanced map of `square` over `0..items`, unchunked; checks
    /// the results.
    fn map(&self, items: usize) -> Outcome<()> {
        let inputs: Vec<Value> = (0..items as i64).map(Value::from).collect();
        let out = self
            .client
            .load_balanced_view()
            .map_sync(&self.square, vec![inputs])?;
        let expected = (0..items as i64).map(|i| Value::from(i * i));
        if out.len() != items || !out.into_iter().eq(expected) {
            return Err("the map returned something else than the squares".into());
        }
        Ok(())
    }

    /// Waits until the store has no pending record of this client: every
    /// task submitted so far is recorded as done.
    fn wait_recorded(&mut self) -> Outcome<()> {
        let pending = TaskFilter::new()
            .client_in([self.client.id()])
            .status_in([RecordStatus::Pending])
            .limit(1);
        let client = self.client.clone();
        let mut last_error = None;
        wait_for(&mut self.processes, || {
            match client.db_query(pending.clone(), &[RecordKey::Stdout]) {
                Ok(records) => records.is_empty(),
                Err(error) => {
                    last_error = Some(error);
                    false
                }
            }
        })
        .map_err(|why| match last_error {
            Some(error) => format!("the store did not record every task: {why} ({error})"),
            None => format!("the store did not record every task: {why}"),
        })?;
        Ok(())
    }

    /// Every record in the store (a query by pages).
    fn records(&self) -> Outcome<usize> {
        Ok(self
            .client
            .db_query(TaskFilter::new(), &[RecordKey::Stdout])?
            .len())
    }

    /// The SQLite file's size and that of its write-ahead log, in bytes.
    fn db_size(&self) -> Option<(u64, u64)> {
        let db = self.db.as_ref()?;
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        Some((size(db), size(Path::new(&wal))))
    }

    /// The controller's resident memory now and at its peak.
    fn controller_memory(&self) -> Outcome<Memory> {
        memory(self.controller_pid)
    }
}

/// `grid args...` in the background, with `cache` as its module cache and
/// its output to `log`.
fn spawn(grid: &Path, args: &[&str], cache: &Path, log: &Path) -> Outcome<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    Ok(Command::new(grid)
        .args(args)
        .env("GRID_CACHE_DIR", cache)
        .env_remove("GRID_URL")
        .env_remove("GRID_CLUSTER")
        .env_remove("GRID_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?)
}

/// Polls `ready` until it holds; gives up when one of `processes` exits or
/// after [`DEADLINE`].
fn wait_for(processes: &mut Processes, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let give_up = Instant::now() + DEADLINE;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(exited) = processes.exited() {
            return Err(exited);
        }
        if Instant::now() > give_up {
            return Err(format!("still not after {DEADLINE:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// One timed map on one controller.
#[derive(Debug)]
struct Run {
    store: Store,
    tasks_per_s: f64,
    map: Duration,
    /// From the start of the map until the store had recorded every task.
    recorded: Duration,
    /// The SQLite file and its WAL, in bytes, and the records in the store.
    db: Option<(u64, u64, usize)>,
}

/// `rounds` rounds of one timed map of `tasks` on each store, on the
/// server at `url`; prints each run and the summary.
fn throughput(grid: &Path, url: &str, rounds: usize, tasks: usize) -> Outcome<Vec<Run>> {
    println!(
        "store-bench throughput: a load-balanced map of {} unchunked tasks, \
         {rounds} round(s), 1 engine process of {SLOTS} slots",
        thousands(tasks)
    );
    let cache = tempfile::Builder::new()
        .prefix("grid-store-bench-cache-")
        .tempdir()?;
    let mut runs = Vec::new();
    for round in 1..=rounds {
        // Which store goes first alternates too.
        let mut order = [Store::Memory, Store::Sqlite];
        if round % 2 == 0 {
            order.reverse();
        }
        for store in order {
            let name = format!("store-bench-{round}-{}", store.name());
            let mut cluster = Cluster::start(grid, url, &name, store, cache.path())?;
            let run = timed_map(&mut cluster, store, tasks)?;
            let mut line = format!(
                "round {round}  {:<6} {:>9.0} tasks/s  (map {:.2} s, all recorded after {:.2} s",
                store.name(),
                run.tasks_per_s,
                run.map.as_secs_f64(),
                run.recorded.as_secs_f64(),
            );
            if let Some((db, wal, records)) = run.db {
                line += &format!(
                    "; file {} + WAL {}, {} records",
                    mib(db),
                    mib(wal),
                    thousands(records)
                );
            }
            println!("{line})");
            runs.push(run);
        }
    }
    let mut medians = Vec::new();
    for store in [Store::Memory, Store::Sqlite] {
        let mut rates: Vec<f64> = runs
            .iter()
            .filter(|r| r.store == store)
            .map(|r| r.tasks_per_s)
            .collect();
        rates.sort_by(f64::total_cmp);
        let (best, median) = (rates[rates.len() - 1], rates[rates.len() / 2]);
        println!(
            "{:<6} best {best:>9.0} tasks/s  median {median:>9.0} tasks/s",
            store.name()
        );
        medians.push(median);
    }
    let ratio = medians[1] / medians[0];
    println!(
        "sqlite/memory (medians) {ratio:.2}  (target >= {RATIO_TARGET:.2}: {})",
        verdict(ratio >= RATIO_TARGET)
    );
    Ok(runs)
}

/// An untimed map of `tasks` (as cluster-bench warms up), then the timed
/// one; each waits for the store to record it.
fn timed_map(cluster: &mut Cluster, store: Store, tasks: usize) -> Outcome<Run> {
    cluster.map(tasks)?;
    cluster.wait_recorded()?;
    let t = Instant::now();
    cluster.map(tasks)?;
    let map = t.elapsed();
    cluster.wait_recorded()?;
    let recorded = t.elapsed();
    let db = match cluster.db_size() {
        Some((db, wal)) => Some((db, wal, cluster.records()?)),
        None => None,
    };
    Ok(Run {
        store,
        tasks_per_s: tasks as f64 / map.as_secs_f64(),
        map,
        recorded,
        db,
    })
}

/// A resident memory reading of a process, in KiB.
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// `VmRSS`.
    rss: u64,
    /// `VmHWM`: the peak RSS.
    hwm: u64,
    /// `RssAnon`: the heap and stacks' share of the RSS.
    anon: u64,
    /// `RssFile`: mapped files' share (the binary, a database's pages).
    file: u64,
}

/// `pid`'s resident memory, from `/proc/<pid>/status`.
fn memory(pid: u32) -> Outcome<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
    })
}

/// One row of the soak's table.
#[derive(Debug)]
struct Row {
    tasks: usize,
    elapsed: Duration,
    /// Since the previous row.
    tasks_per_s: f64,
    memory: Memory,
    /// The highest RSS sampled (every second) since the previous row, KiB.
    max_rss: u64,
}

/// Samples a process's RSS every second on a thread of its own, keeping
/// the highest since it was last asked; stops when dropped.
struct Sampler {
    max_rss: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let max_rss = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel::<()>();
        let max = max_rss.clone();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(1))
            {
                if let Ok(now) = memory(pid) {
                    max.fetch_max(now.rss, Ordering::Relaxed);
                }
            }
        });
        Sampler {
            max_rss,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The highest RSS sampled since the last call, and starts again.
    fn take_max(&self) -> u64 {
        self.max_rss.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `tasks` unchunked tasks through one controller with `store`, in maps
/// of `batch` (fewer for a small run, so that it prints several rows);
/// prints the controller's memory as they go and the summary.
fn soak(grid: &Path, url: &str, tasks: usize, batch: usize, store: Store) -> Outcome<Vec<Row>> {
    if tasks == 0 {
        return Err("the soak needs at least one task".into());
    }
    let cache = tempfile::Builder::new()
        .prefix("grid-store-bench-cache-")
        .tempdir()?;
    let mut cluster = Cluster::start(grid, url, "store-bench-soak", store, cache.path())?;
    let batch = batch.min(tasks.div_ceil(3)).max(1);
    println!(
        "store-bench soak: {} unchunked tasks in maps of {}, controller (pid {}) with the {} store",
        thousands(tasks),
        thousands(batch),
        cluster.controller_pid,
        store.name()
    );
    println!(
        "{:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>10}",
        "tasks",
        "elapsed s",
        "tasks/s",
        "RSS MiB",
        "anon MiB",
        "file MiB",
        "max RSS MiB",
        "VmHWM MiB"
    );
    let sampler = Sampler::start(cluster.controller_pid);
    let start = Instant::now();
    let (mut rows, mut last_tasks, mut last_time) = (Vec::<Row>::new(), 0, Duration::ZERO);
    let mut done = 0;
    while done < tasks {
        let items = batch.min(tasks - done);
        cluster.map(items)?;
        done += items;
        // Every map while the store's bounds fill, then every 100,000.
        let milestone =
            done <= 100_000 || done.is_multiple_of(100_000) || done == tasks || tasks < 100_000;
        if !milestone {
            continue;
        }
        // Read as at the end: once the store has recorded every task (the
        // SQLite store holds fresh submissions up to a second before it
        // writes them, so its page cache has not seen them yet).
        cluster.wait_recorded()?;
        let elapsed = start.elapsed();
        let memory = cluster.controller_memory()?;
        let row = Row {
            tasks: done,
            elapsed,
            tasks_per_s: (done - last_tasks) as f64 / (elapsed - last_time).as_secs_f64(),
            memory,
            max_rss: sampler.take_max().max(memory.rss),
        };
        println!(
            "{:>10} {:>9.1} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>12.1} {:>10.1}",
            thousands(row.tasks),
            row.elapsed.as_secs_f64(),
            row.tasks_per_s,
            kib_to_mib(row.memory.rss),
            kib_to_mib(row.memory.anon),
            kib_to_mib(row.memory.file),
            kib_to_mib(row.max_rss),
            kib_to_mib(row.memory.hwm)
        );
        (last_tasks, last_time) = (done, elapsed);
        rows.push(row);
    }
    drop(sampler);
    let elapsed = start.elapsed();
    let waited = Instant::now();
    cluster.wait_recorded()?;
    let lag = waited.elapsed();
    let end = cluster.controller_memory()?;
    let first = rows.iter().find(|r| r.tasks == 10_000).unwrap_or(&rows[0]);
    let growth = end.rss as f64 / first.memory.rss as f64;
    println!(
        "{} tasks in {:.1} s ({:.0} tasks/s); all recorded {:.2} s after the last map",
        thousands(tasks),
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64(),
        lag.as_secs_f64()
    );
    println!(
        "RSS after {} tasks {:.1} MiB; at the end {:.1} MiB; peak (VmHWM) {:.1} MiB",
        thousands(first.tasks),
        kib_to_mib(first.memory.rss),
        kib_to_mib(end.rss),
        kib_to_mib(end.hwm)
    );
    println!(
        "end / after {} tasks {growth:.2}  (target <= {GROWTH_TARGET:.2}: {})",
        thousands(first.tasks),
        verdict(growth <= GROWTH_TARGET)
    );
    // Past 100,000 the store's own bounds (records kept, page cache) have
    // filled: what is left of growth from there is growth with tasks seen.
    if let Some(settled) = rows.iter().find(|r| r.tasks == 100_000)
        && settled.tasks < tasks
    {
        println!(
            "end / after 100,000 tasks {:.2}  (the bounds filled; figure only)",
            end.rss as f64 / settled.memory.rss as f64
        );
    }
    if let Some((db, wal)) = cluster.db_size() {
        println!(
            "SQLite file {} + WAL {} ({:.0} bytes a task; removed now)",
            mib(db),
            mib(wal),
            (db + wal) as f64 / tasks as f64
        );
    }
    Ok(rows)
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The CI pass: each mode, tiny, against the debug `grid` (which `cargo
/// test --workspace` builds; a test run alone skips with a note when it is
/// not built, unless `GRID_REQUIRE_GUESTS` is set). Figures are printed,
/// never checked.
#[cfg(test)]
mod tests {
    use super::*;

    /// The `grid` binary and a nats-server, or `None` (with a note) when
    /// one is missing and that may be skipped.
    fn setup() -> Option<(PathBuf, NatsServer)> {
        let grid = match grid_binary() {
            Ok(grid) => grid,
            Err(why) if std::env::var_os("GRID_REQUIRE_GUESTS").is_some() => {
                panic!("the grid binary is required (GRID_REQUIRE_GUESTS is set): {why}")
            }
            Err(why) => {
                eprintln!("skipping: {why}");
                return None;
            }
        };
        Some((grid, NatsServer::start_or_skip()?))
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn throughput_runs_a_round_on_each_store() {
        let Some((grid, server)) = setup() else {
            return;
        };
        let runs = throughput(&grid, &server.url(), 1, 300).unwrap();
        let stores: Vec<Store> = runs.iter().map(|r| r.store).collect();
        assert_eq!(stores, [Store::Memory, Store::Sqlite]);
        let (_, _, records) = runs[1].db.expect("the SQLite run reports its file");
        // Both maps and the warm-up calls on each slot.
        assert_eq!(records, 2 * 300 + SLOTS);
    }

    #[test]
    fn soak_runs_on_each_store() {
        let Some((grid, server)) = setup() else {
            return;
        };
        for store in [Store::Memory, Store::Sqlite] {
            let rows = soak(&grid, &server.url(), 3_000, SOAK_BATCH, store).unwrap();
            let counts: Vec<usize> = rows.iter().map(|r| r.tasks).collect();
            assert_eq!(counts, [1_000, 2_000, 3_000]);
        }
    }
}
