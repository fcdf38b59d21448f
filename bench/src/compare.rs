//! `compare-grid`: Grid's side of `bench/compare`, the benchmark that runs
//! Grid and its peers (ipyparallel, Dask, Ray) on the same workloads.
//!
//! It speaks the same line protocol as `bench/compare/peers.py` (see that
//! file's docs), so the orchestrator (`bench/compare/__main__.py`) drives
//! both alike: start a cluster of 2 engines and print
//! `{"event": "ready", "figures": {"start_s": ...}}`, then run each workload
//! named on stdin and print `{"event": "done", "workload": ..., "figures":
//! {...}}` (or `"event": "error"`), until `quit` or end of input. Nothing
//! else goes to stdout. The orchestrator waits for an idle machine before
//! each workload; this program only measures.
//!
//! `--backend local` is `Client::local(2)`: client, controller and engines
//! in this process, on the LocalBus. `--backend nats` is what a user runs
//! on one machine: `grid cluster start -n 2` (a private nats-server, a
//! controller process and an engine process with 2 slots), and this process
//! as a client over `Client::connect`; `grid cluster stop` at the end.
//! `--scheme NAME` runs the controller with that scheduler scheme (for the
//! orchestrator's `--schemes` table); without it, the default. When the
//! cluster does not start, the one line is
//! `{"event": "error", "workload": "start", ...}` and the exit status 1.
//!
//! The function is `square` of `examples/guests/wat/square.wat`; the timed
//! sleeps call `sleep_ms` of the Rust example guest (a WASI sleep). Two
//! workloads need more words: `dag` is N squares, task i after up to two
//! earlier tasks (the graph of [`dag_parents`], which `bench/compare/dag.py`
//! gives the peers too), all submitted at once through `after`; `skewed`,
//! for the schemes table only, is a map of [`SKEWED_TASKS`] sleeps, about
//! one in ten of 50 ms and the rest of 1 ms in a fixed pattern: what a
//! scheme makes of uneven tasks. Their CI pass is this file's unit tests,
//! with small sizes and no peers.
//!
//! The numeric-array workloads (the orchestrator's `--arrays`) move
//! float64 numbers as typed arrays ([`TypedArray`], one byte string on the
//! wire) where the peers move numpy arrays: `push_array` and `pull_array`
//! (100 MB to engine 0 and back, the median of 5 rounds as for `push` and
//! `pull`), `scatter_gather_array` (10,000,000 numbers through
//! `scatter_array` and `gather_array`) and `sum_map` (a load-balanced map
//! of the Rust example guest's `sum_f64` over 1,000 slices of 10,000
//! numbers, one task each). Their sizes are [`ArraySizes::FULL`].

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use grid_client::{
    AsyncResult, Client, Dependency, Elem, EngineId, Function, Scheme, TypedArray, Value,
};

type Outcome<T> = Result<T, Box<dyn std::error::Error>>;
type Figures = BTreeMap<&'static str, serde_json::Value>;

const USAGE: &str =
    "usage: compare-grid --backend local|nats [--scheme NAME] [--tasks N] [--calls K]";

/// Tasks of the `skewed` workload.
const SKEWED_TASKS: u64 = 200;

/// The size of `push` and `pull`'s values, in MB.
const TEN_MB: f64 = 10.0;

/// How many float64 numbers the array workloads move (the peers' sizes
/// in `bench/compare/peers.py` are the same).
#[derive(Clone, Copy, Debug)]
struct ArraySizes {
    /// `push_array` and `pull_array`: one array of this many.
    transfer: usize,
    /// `scatter_gather_array`: one array of this many, over the engines.
    scatter: usize,
    /// `sum_map`: this many tasks, each summing `chunk` numbers.
    chunks: usize,
    chunk: usize,
}

impl ArraySizes {
    /// 100 MB to push and pull, 80 MB to scatter, 1,000 sums of 80 KB.
    const FULL: ArraySizes = ArraySizes {
        transfer: 12_500_000,
        scatter: 10_000_000,
        chunks: 1_000,
        chunk: 10_000,
    };
}

fn main() {
    // As the `grid` binary does.
    grid_bus::tune_allocator();
    if let Err(error) = run() {
        eprintln!("compare-grid: {error}");
        std::process::exit(1);
    }
}

fn run() -> Outcome<()> {
    let (mut backend, mut scheme) = (None, None);
    let (mut tasks, mut calls) = (10_000usize, 2_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(USAGE);
        match arg.as_str() {
            "--backend" => backend = Some(value()?),
            "--scheme" => scheme = Some(value()?.parse::<Scheme>()?),
            "--tasks" => tasks = value()?.parse()?,
            "--calls" => calls = value()?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}").into()),
        }
    }
    let started = Instant::now();
    let cluster = match backend.as_deref() {
        Some("local") => Cluster::local(scheme),
        Some("nats") => Cluster::nats(scheme),
        _ => return Err(USAGE.into()),
    };
    let start_s = started.elapsed().as_secs_f64();
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(error) => return Err(start_failed(error)),
    };
    let bench = match Bench::new(cluster.client(), tasks, calls, ArraySizes::FULL) {
        Ok(bench) => bench,
        Err(error) => {
            if let Err(stop) = cluster.stop() {
                eprintln!("compare-grid: {stop}");
            }
            return Err(start_failed(error));
        }
    };
    emit("ready", None, [("start_s", start_s.into())].into());
    for line in std::io::stdin().lock().lines() {
        let workload = line?;
        let workload = workload.trim();
        if workload.is_empty() {
            continue;
        }
        if workload == "quit" {
            break;
        }
        match bench.run(workload, &cluster) {
            Ok(figures) => emit("done", Some(workload), figures),
            Err(error) => {
                let line = serde_json::json!({
                    "event": "error", "workload": workload, "message": error.to_string(),
                });
                println!("{line}");
            }
        }
    }
    drop(bench);
    cluster.stop()
}

/// Says on the protocol that the cluster did not start, and passes the error on.
fn start_failed(error: Box<dyn std::error::Error>) -> Box<dyn std::error::Error> {
    let line = serde_json::json!({
        "event": "error", "workload": "start", "message": error.to_string(),
    });
    println!("{line}");
    error
}

fn emit(event: &str, workload: Option<&str>, figures: Figures) {
    let mut line = serde_json::json!({ "event": event, "figures": figures });
    if let Some(workload) = workload {
        line["workload"] = workload.into();
    }
    println!("{line}");
}

/// The cluster under test.
enum Cluster {
    Local(Client),
    Nats {
        client: Client,
        grid: PathBuf,
        state: tempfile::TempDir,
        url: String,
    },
}

impl Cluster {
    /// `Client::local(2)`, with `scheme` when one is asked for.
    fn local(scheme: Option<Scheme>) -> Outcome<Cluster> {
        let client = match scheme {
            Some(scheme) => Client::local_builder(2).scheme(scheme).start()?,
            None => Client::local(2)?,
        };
        Ok(Cluster::Local(client))
    }

    /// `grid cluster start -n 2` (with `--scheme` when one is asked for)
    /// with a state directory of its own.
    fn nats(scheme: Option<Scheme>) -> Outcome<Cluster> {
        let grid = sibling("grid")?;
        let state = tempfile::tempdir()?;
        let mut start = Command::new(&grid);
        start.args(["cluster", "start", "-n", "2", "--cluster", "bench"]);
        if let Some(scheme) = scheme {
            start.args(["--scheme", scheme.name()]);
        }
        let out = start.env("GRID_STATE_DIR", state.path()).output()?;
        if !out.status.success() {
            return Err(format!(
                "grid cluster start failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        let url = String::from_utf8(out.stdout)?.trim().to_string();
        let client = Client::connect(&url, "bench")?;
        Ok(Cluster::Nats {
            client,
            grid,
            state,
            url,
        })
    }

    fn client(&self) -> &Client {
        match self {
            Cluster::Local(client) | Cluster::Nats { client, .. } => client,
        }
    }

    /// Peak resident memory (MB) of the client, the controller and one engine.
    fn peak_memory(&self) -> Outcome<Figures> {
        let me = peak_rss_mb(std::process::id())?;
        let mut figures = Figures::new();
        figures.insert("client_mb", me.into());
        match self {
            Cluster::Local(_) => {
                figures.insert("controller_mb", me.into());
                figures.insert("engine_mb", me.into());
                figures.insert(
                    "note",
                    "client, controller and engines share one process".into(),
                );
            }
            Cluster::Nats { url, .. } => {
                let controller = find_process(&["controller", url])?;
                let engine = find_process(&["engine", url])?;
                figures.insert("controller_mb", peak_rss_mb(controller)?.into());
                figures.insert("engine_mb", peak_rss_mb(engine)?.into());
                figures.insert("note", "the engine process runs both slots".into());
            }
        }
        Ok(figures)
    }

    fn stop(self) -> Outcome<()> {
        if let Cluster::Nats {
            client,
            grid,
            state,
            ..
        } = self
        {
            drop(client);
            let status = Command::new(&grid)
                .args(["cluster", "stop", "--cluster", "bench"])
                .env("GRID_STATE_DIR", state.path())
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                return Err("grid cluster stop failed".into());
            }
        }
        Ok(())
    }
}

/// The workloads, on one cluster.
struct Bench {
    client: Client,
    square: Function,
    sleep_ms: Function,
    sum_f64: Function,
    tasks: usize,
    calls: usize,
    arrays: ArraySizes,
}

impl Bench {
    fn new(client: &Client, tasks: usize, calls: usize, arrays: ArraySizes) -> Outcome<Bench> {
        let square = client
            .load_module(grid_examples::wat_square())?
            .func("square");
        let guest = grid_examples::rust_guest().map_err(|e| e.to_string())?;
        let guest = client.load_module(guest)?;
        let (sleep_ms, sum_f64) = (guest.func("sleep_ms"), guest.func("sum_f64"));
        // Every engine compiles (or loads from its disk cache) both modules
        // before anything is timed, as a running cluster would have.
        let all = client.view_all()?;
        all.apply_sync(&square, [Value::from(0)])?;
        all.apply_sync(&sleep_ms, [Value::from(0)])?;
        Ok(Bench {
            client: client.clone(),
            square,
            sleep_ms,
            sum_f64,
            tasks,
            calls,
            arrays,
        })
    }

    /// Waits for `results`, the squares of 0..tasks submitted since
    /// `start`, checks their sum and gives the rate.
    fn squares_rate(&self, results: Vec<AsyncResult>, start: Instant) -> Outcome<Figures> {
        let mut sum = 0i128;
        for result in results {
            sum += int(&result.get(None)?)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        check_sum_of_squares(sum, self.tasks)?;
        Ok(rate("tasks_per_s", self.tasks, seconds))
    }

    fn run(&self, workload: &str, cluster: &Cluster) -> Outcome<Figures> {
        let lb = self.client.load_balanced_view();
        let e0 = self.client.view_one(EngineId(0));
        match workload {
            "apply_lb" => self.round_trips(|| lb.apply_sync(&self.square, [Value::from(3)])),
            "apply_direct" => self.round_trips(|| e0.apply_sync(&self.square, [Value::from(3)])),
            "map1" => self.map(1),
            "map100" => self.map(100),
            "dag" => {
                let t = Instant::now();
                let mut results: Vec<AsyncResult> = Vec::with_capacity(self.tasks);
                for i in 0..self.tasks {
                    let parents = dag_parents(i);
                    let after = Dependency::new(parents.iter().flat_map(|&p| results[p].msg_ids()));
                    results.push(
                        lb.clone()
                            .after(after)
                            .apply(&self.square, [Value::from(i as i64)])?,
                    );
                }
                self.squares_rate(results, t)
            }
            "skewed" => {
                let sleeps: Vec<u64> = (0..SKEWED_TASKS).map(skewed_ms).collect();
                let ideal_s = sleeps.iter().sum::<u64>() as f64 / 2.0 / 1000.0;
                let t = Instant::now();
                lb.map_sync(
                    &self.sleep_ms,
                    vec![sleeps.into_iter().map(Value::from).collect()],
                )?;
                let seconds = t.elapsed().as_secs_f64();
                let mut figures = Figures::new();
                figures.insert("seconds", seconds.into());
                figures.insert("ideal_s", ideal_s.into());
                figures.insert("overhead_pct", ((seconds / ideal_s - 1.0) * 100.0).into());
                Ok(figures)
            }
            "async" => {
                let t = Instant::now();
                let results = (0..self.tasks)
                    .map(|i| lb.apply_async(&self.square, [Value::from(i as i64)]))
                    .collect::<Result<Vec<AsyncResult>, _>>()?;
                self.squares_rate(results, t)
            }
            "push" => self.transfer(TEN_MB, |round| {
                let big = Value::Bytes(ten_megabytes(round));
                let t = Instant::now();
                e0.push([("big".to_string(), big)].into())?.get(None)?;
                Ok(t.elapsed())
            }),
            "pull" => self.transfer(TEN_MB, |round| {
                // A value of its own (untimed), as the peers do.
                let big = Value::Bytes(ten_megabytes(round.wrapping_add(100)));
                e0.push([("big".to_string(), big)].into())?.get(None)?;
                let t = Instant::now();
                let value = e0.get("big")?;
                let elapsed = t.elapsed();
                match value {
                    Value::Bytes(bytes) if bytes.len() == 10_000_000 => Ok(elapsed),
                    _ => Err("pulled something else than the pushed 10 MB".into()),
                }
            }),
            "scatter_gather" => {
                let all = self.client.view_all()?;
                let data: Vec<Value> = (0..1_000_000i64).map(Value::from).collect();
                // Scatter consumes its input: the copy kept for the check
                // below is made before the clock starts.
                let sent = data.clone();
                let t = Instant::now();
                all.scatter("x", sent, false)?.get(None)?;
                let scatter_s = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let back = all.gather("x", None)?;
                let gather_s = t.elapsed().as_secs_f64();
                if back != data {
                    return Err("gather returned something else than was scattered".into());
                }
                Ok(scatter_gather_figures(scatter_s, gather_s, data.len()))
            }
            "push_array" => {
                let n = self.arrays.transfer;
                self.transfer(megabytes(n), |round| {
                    let big = Value::Typed(floats(n, round));
                    let t = Instant::now();
                    e0.push([("big".to_string(), big)].into())?.get(None)?;
                    Ok(t.elapsed())
                })
            }
            "pull_array" => {
                let n = self.arrays.transfer;
                self.transfer(megabytes(n), |round| {
                    // A value of its own (untimed), as `pull` does.
                    let big = floats(n, round.wrapping_add(100));
                    e0.push([("big".to_string(), Value::Typed(big.clone()))].into())?
                        .get(None)?;
                    let t = Instant::now();
                    let value = e0.get("big")?;
                    let elapsed = t.elapsed();
                    match value {
                        Value::Typed(back) if back == big => Ok(elapsed),
                        _ => Err("pulled something else than the pushed array".into()),
                    }
                })
            }
            "scatter_gather_array" => {
                let all = self.client.view_all()?;
                let data = floats(self.arrays.scatter, 0);
                let t = Instant::now();
                all.scatter_array("x", &data, false)?.get(None)?;
                let scatter_s = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let back = all.gather_array("x", Elem::F64, None)?;
                let gather_s = t.elapsed().as_secs_f64();
                if back != data {
                    return Err("gather_array returned something else than was scattered".into());
                }
                Ok(scatter_gather_figures(scatter_s, gather_s, data.len()))
            }
            "sum_map" => self.sum_map(),
            "sleep40" => {
                let t = Instant::now();
                lb.map_sync(&self.sleep_ms, vec![vec![Value::from(50); 40]])?;
                let seconds = t.elapsed().as_secs_f64();
                let mut figures = Figures::new();
                figures.insert("seconds", seconds.into());
                figures.insert("ideal_s", 1.0.into());
                figures.insert("overhead_pct", ((seconds - 1.0) * 100.0).into());
                Ok(figures)
            }
            "rss" => cluster.peak_memory(),
            other => Err(format!("unknown workload {other:?}").into()),
        }
    }

    /// `calls` timed round trips after 100 untimed ones.
    fn round_trips(
        &self,
        call: impl Fn() -> Result<Value, grid_client::Error>,
    ) -> Outcome<Figures> {
        for _ in 0..100 {
            call()?;
        }
        let mut samples = Vec::with_capacity(self.calls);
        let t = Instant::now();
        for _ in 0..self.calls {
            let one = Instant::now();
            call()?;
            samples.push(one.elapsed());
        }
        let total = t.elapsed().as_secs_f64();
        samples.sort();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let mut figures = Figures::new();
        figures.insert("p50_us", micros(samples[samples.len() / 2]).into());
        figures.insert("p99_us", micros(samples[samples.len() * 99 / 100]).into());
        figures.insert("calls_per_s", (self.calls as f64 / total).into());
        Ok(figures)
    }

    /// A load-balanced map of `tasks` squares in chunks of `chunksize`.
    fn map(&self, chunksize: usize) -> Outcome<Figures> {
        let lb = self.client.load_balanced_view().chunksize(chunksize);
        let items: Vec<Value> = (0..self.tasks as i64).map(Value::from).collect();
        let t = Instant::now();
        let out = lb.map_sync(&self.square, vec![items])?;
        let seconds = t.elapsed().as_secs_f64();
        let sum = out.iter().map(int).sum::<Result<i128, _>>()?;
        check_sum_of_squares(sum, self.tasks)?;
        Ok(rate("tasks_per_s", self.tasks, seconds))
    }

    /// Five timed transfers of `megabytes` each: the median, as MB/s and seconds.
    fn transfer(
        &self,
        megabytes: f64,
        mut once: impl FnMut(u8) -> Outcome<Duration>,
    ) -> Outcome<Figures> {
        let mut samples = (0..5u8).map(&mut once).collect::<Outcome<Vec<_>>>()?;
        samples.sort();
        let seconds = samples[samples.len() / 2].as_secs_f64();
        let mut figures = Figures::new();
        figures.insert("mb_per_s", (megabytes / seconds).into());
        figures.insert("seconds", seconds.into());
        Ok(figures)
    }

    /// `sum_map`: a load-balanced map of `sum_f64`, one task per chunk,
    /// each argument a slice of one typed array (made before the clock
    /// starts, as the peers' chunks are); every sum is checked.
    fn sum_map(&self) -> Outcome<Figures> {
        let ArraySizes { chunks, chunk, .. } = self.arrays;
        let data = floats(chunks * chunk, 0);
        let items: Vec<Value> = (0..chunks)
            .map(|c| Value::Typed(data.slice(c * chunk..(c + 1) * chunk)))
            .collect();
        let expected: Vec<f64> = data
            .as_slice::<f64>()
            .ok_or("the data is not float64")?
            .chunks(chunk)
            .map(|part| part.iter().sum())
            .collect();
        let lb = self.client.load_balanced_view();
        let t = Instant::now();
        let sums = lb.map_sync(&self.sum_f64, vec![items])?;
        let seconds = t.elapsed().as_secs_f64();
        if sums.len() != expected.len() {
            return Err(format!("{} sums for {} chunks", sums.len(), expected.len()).into());
        }
        for (i, (sum, want)) in sums.iter().zip(&expected).enumerate() {
            match sum.as_f64() {
                Some(got) if (got - want).abs() <= want.abs() * 1e-12 => {}
                _ => return Err(format!("chunk {i}: sum {sum:?}, expected {want}").into()),
            }
        }
        Ok(rate("items_per_s", chunks * chunk, seconds))
    }
}

/// The figures of a scatter and a gather of `items` numbers.
fn scatter_gather_figures(scatter_s: f64, gather_s: f64, items: usize) -> Figures {
    let mut figures = Figures::new();
    figures.insert("scatter_s", scatter_s.into());
    figures.insert("gather_s", gather_s.into());
    figures.insert(
        "items_per_s",
        (items as f64 / (scatter_s + gather_s)).into(),
    );
    figures
}

/// `i / 4 + round` for i in 0..n, as float64 (the peers' `floats` too):
/// different each round, so no round finds the last one's data in place.
fn floats(n: usize, round: u8) -> TypedArray {
    TypedArray::from_vec(
        (0..n)
            .map(|i| i as f64 * 0.25 + f64::from(round))
            .collect::<Vec<f64>>(),
    )
}

/// MB (1e6 bytes) of `n` float64.
fn megabytes(n: usize) -> f64 {
    (n * 8) as f64 / 1e6
}

/// splitmix64: the hash behind the fixed `dag` graph and `skewed` pattern,
/// in 64-bit wrapping arithmetic that Python repeats exactly.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Task `i`'s parents in the `dag` workload, nearest first: `i - 1 -
/// (h(2i) % 10)` and `i - 1 - (h(2i + 1) % 100)`, each when not negative,
/// once when they coincide. `bench/compare/dag.py` is the same for the peers.
fn dag_parents(i: usize) -> Vec<usize> {
    let x = i as u64;
    let backs = [1 + splitmix64(2 * x) % 10, 1 + splitmix64(2 * x + 1) % 100];
    let mut parents = Vec::with_capacity(2);
    for back in backs {
        if let Some(p) = i.checked_sub(back as usize)
            && !parents.contains(&p)
        {
            parents.push(p);
        }
    }
    parents
}

/// Task `i`'s sleep in the `skewed` workload: 50 ms for about one in ten
/// (by hash, so the long ones fall on no regular stride), 1 ms otherwise.
fn skewed_ms(i: u64) -> u64 {
    if splitmix64(i).is_multiple_of(10) {
        50
    } else {
        1
    }
}

fn rate(name: &'static str, count: usize, seconds: f64) -> Figures {
    let mut figures = Figures::new();
    figures.insert(name, (count as f64 / seconds).into());
    figures.insert("seconds", seconds.into());
    figures
}

fn int(value: &Value) -> Result<i128, String> {
    match value {
        Value::Int(i) => Ok(*i),
        other => Err(format!("expected an integer, got {other:?}")),
    }
}

fn check_sum_of_squares(sum: i128, n: usize) -> Result<(), String> {
    let n = n as i128;
    let expected = (n - 1) * n * (2 * n - 1) / 6;
    if sum == expected {
        Ok(())
    } else {
        Err(format!(
            "wrong results: sum of squares {sum}, expected {expected}"
        ))
    }
}

/// 10,000,000 bytes, different for each `round` (a stored copy would cost nothing).
fn ten_megabytes(round: u8) -> Vec<u8> {
    (0..10_000_000u32)
        .map(|i| (i % 251) as u8 ^ round)
        .collect()
}

/// A binary built beside this one (`target/release/grid`).
fn sibling(name: &str) -> Outcome<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release -p grid-cli)",
            path.display()
        )
        .into())
    }
}

/// The pid of the one process whose command line holds all of `words`.
fn find_process(words: &[&str]) -> Outcome<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let is_grid = args
            .first()
            .is_some_and(|exe| Path::new(exe).file_name() == Some("grid".as_ref()));
        if is_grid && words.iter().all(|word| args.iter().any(|arg| arg == word)) {
            found.push(pid);
        }
    }
    match found[..] {
        [pid] => Ok(pid),
        _ => Err(format!("expected one grid process with {words:?}, found {found:?}").into()),
    }
}

/// Peak resident set size (`VmHWM`) of `pid`, in MB.
fn peak_rss_mb(pid: u32) -> Outcome<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .ok_or("no VmHWM in /proc/PID/status")?;
    Ok(kib * 1024.0 / 1e6)
}

/// The CI pass of this bench: the workloads of this file only Grid runs,
/// that need the same graph in two languages, or that move typed arrays,
/// small, without peers.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dag_graph_is_the_one_the_peers_run() {
        let expected: String = (0..10_000)
            .map(|i| {
                let parents: Vec<String> = dag_parents(i).iter().map(usize::to_string).collect();
                parents.join(" ") + "\n"
            })
            .collect();
        let script = grid_examples::repo_root().join("bench/compare/dag.py");
        let out = match Command::new("python3").arg(&script).arg("10000").output() {
            Ok(out) => out,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipping the comparison with dag.py: no python3 here");
                return;
            }
            Err(error) => panic!("cannot run {}: {error}", script.display()),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let python = String::from_utf8_lossy(&out.stdout);
        let differ = python
            .lines()
            .zip(expected.lines())
            .position(|(p, r)| p != r);
        assert_eq!(
            differ, None,
            "task i's parents differ between Python and Rust"
        );
        assert_eq!(python.lines().count(), 10_000);
        // Pinned too, so a change to both sides at once is seen.
        let firsts: Vec<Vec<usize>> = (0..8).map(dag_parents).collect();
        assert_eq!(
            firsts,
            [
                vec![],
                vec![0],
                vec![],
                vec![0],
                vec![1],
                vec![],
                vec![2],
                vec![]
            ]
        );
    }

    fn local_bench(scheme: Scheme, tasks: usize) -> Option<(Cluster, Bench)> {
        grid_examples::require_path(grid_examples::rust_guest())?;
        let cluster = Cluster::local(Some(scheme)).unwrap();
        let bench = Bench::new(cluster.client(), tasks, 10, SMALL_ARRAYS).unwrap();
        Some((cluster, bench))
    }

    #[test]
    fn dag_and_skewed_run_locally() {
        let Some((cluster, bench)) = local_bench(Scheme::LeastLoad, 500) else {
            return;
        };
        for workload in ["dag", "skewed"] {
            let figures = bench.run(workload, &cluster).unwrap();
            println!("{workload}: {figures:?}");
            assert!(figures.contains_key("seconds"));
        }
    }

    /// The array workloads at a thousandth of their size.
    const SMALL_ARRAYS: ArraySizes = ArraySizes {
        transfer: 12_500,
        scatter: 10_001,
        chunks: 10,
        chunk: 1_000,
    };

    #[test]
    fn array_workloads_run_locally() {
        let Some((cluster, bench)) = local_bench(Scheme::LeastLoad, 10) else {
            return;
        };
        for workload in [
            "push_array",
            "pull_array",
            "scatter_gather_array",
            "sum_map",
        ] {
            let figures = bench.run(workload, &cluster).unwrap();
            println!("{workload}: {figures:?}");
            assert!(figures.contains_key("seconds") || figures.contains_key("scatter_s"));
        }
    }

    #[test]
    fn every_scheme_runs_the_map() {
        for scheme in Scheme::ALL {
            let Some((cluster, bench)) = local_bench(scheme, 200) else {
                return;
            };
            let figures = bench.run("map1", &cluster).unwrap();
            println!("{scheme}: {figures:?}");
        }
    }
}
