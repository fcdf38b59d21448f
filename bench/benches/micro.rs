//! Micro-benchmarks that guard the per-message and per-task figures against
//! regressions: the CBOR codec (a submission, a reply, a list of 1,000
//! integers), one scheduler decision, one task on a fresh instance in an
//! engine slot, and one message through the in-process bus.
//!
//! `engine-bench` and `cluster-bench` print figures against targets; this suite
//! uses criterion so a change can be compared with the previous run (criterion
//! keeps the last run under the target directory and reports the difference).
//! Run it in release, as `cargo bench` does:
//! `cargo bench -p grid-bench --bench micro` (a filter after `--` picks
//! benchmarks, e.g. `-- codec/`). About a minute: 1 s warm-up and 3 s of
//! measurement per benchmark.
//!
//! Figures from one run on the reference machine (2 cores, release build;
//! criterion's middle estimate). The machine is shared: the same suite ran up
//! to 5x slower while another build used both cores, so compare runs made on a
//! quiet machine, and rerun before believing a reported change.
//!
//! | benchmark | time | note |
//! |---|---|---|
//! | codec/submission/encode | 560 ns | 319 bytes on the wire |
//! | codec/submission/decode | 673 ns | |
//! | codec/reply/encode | 739 ns | 399 bytes |
//! | codec/reply/decode | 749 ns | |
//! | codec/list_1000/encode | 7.0 us | 2,723 bytes |
//! | codec/list_1000/decode | 22.3 us | |
//! | scheduler/decision | 86 ns | ~11.6 million decisions/s |
//! | engine/numeric_wat_square | 3.2 us | target < 10 us (issue 2) |
//! | engine/cbor_rust_square | 7.9 us | 33.7 us before freed slots kept their touched pages (`runtime.rs`) |
//! | bus/publish_now_then_poll | 175 ns | |
//! | bus/publish_then_next_async | 203 ns | |

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use grid_bus::{Bus, LocalBus};
use grid_controller::{SchedAction, SchedEvent, Scheduler, SchedulerConfig};
use grid_host::{EngineConfig, Runtime};
use grid_proto::{
    ArgsHash, Body, ClientId, ConfigHash, EngineId, EngineRef, EngineUuid, Fingerprint, ModuleHash,
    MsgId, Outcome, OutputHash, Reply, SchedFlags, Subjects, Submission, Task, TaskResult,
    Timestamp, Value, Work,
};

/// A typical submission: `square(12)`, the work encoded in its body as a
/// client does it.
fn submission(module: ModuleHash) -> Submission {
    let work = Work::Task(Task::call(module, "square", vec![Value::from(12)]));
    Submission {
        msg_id: MsgId::new(),
        client: ClientId::new(),
        submitted: Timestamp::now(),
        work: Body::new(&work).expect("a task encodes"),
        sched: SchedFlags::default(),
    }
}

/// What an engine sends back for `square(12)`: the value, no output, a full
/// fingerprint.
fn task_result(module: ModuleHash) -> TaskResult {
    let mut result = TaskResult::immediate(MsgId::new(), Outcome::Ok(Value::from(144)));
    result.fingerprint = Fingerprint {
        module,
        args: ArgsHash::of(b"[12]"),
        config: ConfigHash::of(b"config"),
        fuel_used: None,
        output: OutputHash::of_output(b"", b""),
        seed: None,
    };
    result
}

fn engine_ref() -> EngineRef {
    EngineRef {
        id: EngineId(0),
        uuid: EngineUuid::new(),
    }
}

/// Encoding covers the body and the envelope (what the sender pays);
/// decoding covers both too (what the receiving engine or client pays; the
/// controller decodes only the envelope).
fn codec(c: &mut Criterion) {
    let module = ModuleHash::of(b"square");
    let mut group = c.benchmark_group("codec");

    let sub = submission(module);
    let work: Work = sub.work.decode().expect("decodes");
    let wire = grid_proto::encode(&sub).expect("encodes");
    assert_eq!(
        grid_proto::decode::<Submission>(&wire).expect("decodes"),
        sub
    );
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("submission/encode", |b| {
        b.iter(|| {
            let sub = Submission {
                msg_id: sub.msg_id,
                client: sub.client,
                submitted: sub.submitted,
                work: Body::new(black_box(&work)).expect("encodes"),
                sched: SchedFlags::default(),
            };
            grid_proto::encode(&sub).expect("encodes")
        })
    });
    group.bench_function("submission/decode", |b| {
        b.iter(|| {
            let sub: Submission = grid_proto::decode(black_box(&wire)).expect("decodes");
            sub.work.decode().expect("decodes")
        })
    });

    let result = task_result(module);
    let (client, submitted, engine) = (ClientId::new(), Timestamp::now(), Some(engine_ref()));
    let wire =
        grid_proto::encode(&Reply::new(client, submitted, engine, &result).expect("encodes"))
            .expect("encodes");
    let back: Reply = grid_proto::decode(&wire).expect("decodes");
    assert_eq!(back.result.decode().expect("decodes"), result);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("reply/encode", |b| {
        b.iter(|| {
            let reply = Reply::new(client, submitted, engine, black_box(&result)).expect("encodes");
            grid_proto::encode(&reply).expect("encodes")
        })
    });
    group.bench_function("reply/decode", |b| {
        b.iter(|| {
            let reply: Reply = grid_proto::decode(black_box(&wire)).expect("decodes");
            reply.result.decode().expect("decodes")
        })
    });

    let list = Value::from((0..1000).collect::<Vec<i64>>());
    let wire = grid_proto::encode(&list).expect("encodes");
    assert_eq!(grid_proto::decode::<Value>(&wire).expect("decodes"), list);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("list_1000/encode", |b| {
        b.iter(|| grid_proto::encode(black_box(&list)).expect("encodes"))
    });
    group.bench_function("list_1000/decode", |b| {
        b.iter(|| grid_proto::decode::<Value>(black_box(&wire)).expect("decodes"))
    });
    group.finish();
}

/// Tasks in flight while measuring: a few per engine, under the high-water
/// mark, so every submission is placed at once and both engines get work.
const IN_FLIGHT: usize = 8;

/// Decisions timed between building fresh submissions (which is not timed).
const CHUNK: u64 = 4096;

/// One iteration is one [`Scheduler::handle`] call, alternately a submission
/// (placed on an engine) and a result (which frees its slot), with 2 engines.
fn scheduler(c: &mut Criterion) {
    let module = ModuleHash::of(b"square");
    let now = Instant::now();
    let mut sched = Scheduler::new(SchedulerConfig::default());
    for id in 0..2 {
        assert_eq!(
            sched.handle(SchedEvent::EngineUp(EngineId(id)), now),
            vec![]
        );
    }
    let mut in_flight = VecDeque::new();
    for _ in 0..IN_FLIGHT {
        let s = Box::new(submission(module));
        in_flight.push_back(s.msg_id);
        match &sched.handle(submit(s), now)[..] {
            [SchedAction::Dispatch { .. }] => {}
            other => panic!("expected one dispatch, got {other:?}"),
        }
    }
    assert_eq!(sched.outstanding(EngineId(1)), IN_FLIGHT / 2);

    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(1));
    let mut submit_next = false;
    group.bench_function("decision", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(CHUNK);
                let mut fresh: Vec<Box<Submission>> = (0..n / 2 + 1)
                    .map(|_| Box::new(submission(module)))
                    .collect();
                let start = Instant::now();
                for _ in 0..n {
                    let event = if submit_next {
                        let s = fresh.pop().expect("one fresh submission per two decisions");
                        in_flight.push_back(s.msg_id);
                        submit(s)
                    } else {
                        let msg_id = in_flight.pop_front().expect("tasks are in flight");
                        SchedEvent::Finished {
                            msg_id,
                            engine: None,
                            status: grid_proto::Status::Ok,
                        }
                    };
                    black_box(sched.handle(event, now));
                    submit_next = !submit_next;
                }
                elapsed += start.elapsed();
                done += n;
            }
            elapsed
        })
    });
    group.finish();
    assert_eq!(sched.waiting(), 0, "every submission was placed at once");
}

/// A task on a fresh instance, as an engine slot runs each one: numeric ABI
/// (the WAT example) and CBOR ABI (the Rust example guest, when built).
fn engine(c: &mut Criterion) {
    let runtime = Runtime::new(EngineConfig::default().cache_dir(None)).expect("runtime");
    let mut engine = runtime.engine(EngineId(0));
    let wat = std::fs::read(grid_examples::wat_square()).expect("the WAT example");
    let square = runtime.load(&wat).expect("the WAT example loads");
    let numeric = Task::call(square, "square", vec![Value::from(12)]);
    assert_eq!(engine.run(&numeric).value(), Ok(&Value::from(144)));

    let mut group = c.benchmark_group("engine");
    group.bench_function("numeric_wat_square", |b| b.iter(|| engine.run(&numeric)));
    if let Some(rust) = grid_examples::require(grid_examples::rust_guest()) {
        let guest = runtime.load(&rust).expect("the Rust guest loads");
        let cbor = Task::call(guest, "square", vec![Value::from(12)]);
        assert_eq!(engine.run(&cbor).value(), Ok(&Value::from(144)));
        group.bench_function("cbor_rust_square", |b| b.iter(|| engine.run(&cbor)));
    }
    group.finish();
}

/// One small message (an encoded reply) from publish to the one subscriber,
/// all on the current thread: through the synchronous `publish_now` and a
/// poll, as the engine's worker thread publishes, and through the async
/// `publish` and `next` in a current-thread runtime, as a service task does.
fn bus(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let bus = LocalBus::new();
    let client = ClientId::new();
    let subject = Subjects::new("default")
        .expect("a cluster name")
        .result(client);
    let mut subscription = rt.block_on(bus.subscribe(&subject)).expect("subscribes");
    let module = ModuleHash::of(b"square");
    let reply = Reply::new(
        client,
        Timestamp::now(),
        Some(engine_ref()),
        &task_result(module),
    )
    .expect("encodes");
    let payload = Bytes::from(grid_proto::encode(&reply).expect("encodes"));

    let mut group = c.benchmark_group("bus");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish_now_then_poll", |b| {
        b.iter(|| {
            bus.publish_now(&subject, &payload)
                .expect("a local bus publishes synchronously")
                .expect("publishes");
            subscription
                .next()
                .now_or_never()
                .flatten()
                .expect("delivered during publish")
        })
    });
    group.bench_function("publish_then_next_async", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bus.publish(&subject, payload.clone())
                        .await
                        .expect("publishes");
                    black_box(subscription.next().await.expect("delivered"));
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = codec, scheduler, engine, bus
}
criterion_main!(micro);

/// A submission without dependencies, as the hub hands it to the scheduler.
fn submit(submission: Box<Submission>) -> SchedEvent {
    SchedEvent::Submit {
        submission,
        deps: Vec::new(),
    }
}
