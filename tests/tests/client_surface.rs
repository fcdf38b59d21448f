//! The client's everyday surface and its traps (issue 10), each test once on
//! the LocalBus and once on a real nats-server: map results with map
//! semantics (sync, async, from an executor that is not tokio's), bounded
//! lazy imap, views by slice, waiting for several results and for engines,
//! async hub queries, the in-flight window, and aborting work still waiting
//! in the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use grid_client::{
    Client, EngineId, Error, Function, QueueStatus, Reply, Select, Status, Value, Wait,
};
use grid_tests::{Backend, Cluster, on_both_buses};

const T: Option<Duration> = Some(Duration::from_secs(60));

on_both_buses!(
    map_results_mean_the_whole_map_sync_and_async,
    imap_reads_lazily_and_bounds_what_is_in_flight,
    views_by_slice_follow_ipyparallel,
    waiting_for_results_engines_and_everything,
    hub_queries_have_async_forms_on_any_executor,
    the_in_flight_window_holds_back_and_aborts_unsent_work,
);

fn cluster(backend: Backend, engines: usize) -> (Cluster, Function) {
    let client = grid_tests::cluster(backend, engines);
    let square = client
        .load_module(grid_examples::wat_square())
        .expect("module uploads")
        .func("square");
    (client, square)
}

fn squares(n: i64) -> Vec<Value> {
    (0..n).map(|i| Value::from(i * i)).collect()
}

const SPIN: &str = r#"(module
  (func (export "spin") (loop br 0))
  (func (export "spin_on") (param i64) (loop br 0)))"#;

fn spin(client: &Client) -> Function {
    client
        .module_from_bytes(SPIN.as_bytes())
        .unwrap()
        .func("spin")
}

/// Issue 10, trap 1 (`get_async` gave the first item only) and trap 3
/// (`stream()` panicked outside a tokio runtime).
fn map_results_mean_the_whole_map_sync_and_async(backend: Backend) {
    let (client, square) = cluster(backend, 2);
    let input = vec![(0..10).map(Value::from).collect::<Vec<_>>()];
    for chunksize in [1, 3] {
        let lb = client.load_balanced_view().chunksize(chunksize);
        let m = lb.map_async(&square, input.clone()).unwrap();
        // futures' own executor: no tokio runtime on this thread.
        let values = futures_executor::block_on(m.get_async(None)).unwrap();
        assert_eq!(values, squares(10), "chunksize {chunksize}");
        let timed = futures_executor::block_on(m.get_async(T)).unwrap();
        assert_eq!(timed, squares(10));
        let each = futures_executor::block_on(m.results_async(None)).unwrap();
        assert_eq!(each.len(), 10);
        assert_eq!(m.get(T).unwrap(), squares(10));
        assert_eq!(m.items(), 10);
        assert_eq!(m.len(), 10usize.div_ceil(chunksize));
        assert_eq!(m.progress(), m.len());
        assert_eq!(m.metadata().len(), m.len());
        assert_eq!(m.successful(), Some(true));
        let streamed: Vec<Value> =
            futures_executor::block_on(m.stream().map(|r| r.unwrap()).collect());
        assert_eq!(streamed, squares(10));
        let iterated: Vec<Value> = (&m).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(iterated, squares(10));
    }
    // A direct view's map: one part per engine, still per-item values.
    let all = client.view_all().unwrap();
    let m = all.map_async(&square, input.clone()).unwrap();
    assert_eq!(
        futures_executor::block_on(m.get_async(None)).unwrap(),
        squares(10)
    );
    // A timeout from another executor is an error, not a panic.
    let spin_on = client
        .module_from_bytes(SPIN.as_bytes())
        .unwrap()
        .func("spin_on");
    let slow = client
        .view_one(EngineId(0))
        .map_async(&spin_on, vec![vec![Value::from(1)]])
        .unwrap();
    let timed_out = futures_executor::block_on(slow.get_async(Some(Duration::from_millis(50))));
    assert!(matches!(timed_out, Err(Error::Timeout(_))), "{timed_out:?}");
    slow.abort().unwrap();
    assert!(slow.wait(T));
}

/// An iterator that counts what was taken from it.
struct Counted<I> {
    inner: I,
    taken: Arc<AtomicUsize>,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.taken.fetch_add(1, Ordering::SeqCst);
        Some(item)
    }
}

fn imap_reads_lazily_and_bounds_what_is_in_flight(backend: Backend) {
    let (client, square) = cluster(backend, 2);
    let n = 3_000i64;
    for (chunksize, bound, ordered) in [(1, 8, true), (7, 4, true), (1, 16, false)] {
        let taken = Arc::new(AtomicUsize::new(0));
        let input = Counted {
            inner: 0..n,
            taken: taken.clone(),
        };
        let lb = client
            .load_balanced_view()
            .chunksize(chunksize)
            .ordered(ordered);
        let mut imap = lb.imap(&square, input).max_outstanding(bound);
        assert_eq!(taken.load(Ordering::SeqCst), 0, "nothing read before use");
        let mut got = Vec::new();
        while let Some(item) = imap.next() {
            got.push(item.unwrap());
            assert!(imap.outstanding() <= bound);
            let read = taken.load(Ordering::SeqCst);
            assert!(
                read <= got.len() + imap.buffered() + bound * chunksize,
                "read {read} items with {} handed out",
                got.len()
            );
        }
        if !ordered {
            got.sort_by_key(|v| v.as_i64());
        }
        assert_eq!(got, squares(n), "chunksize {chunksize}, ordered {ordered}");
        assert_eq!(imap.items_done(), n as usize);
        assert_eq!(imap.tasks_done(), (n as usize).div_ceil(chunksize));
        assert!(imap.serial_time() > Duration::ZERO);
    }
    // On a direct view, as a Stream, on a plain executor; argument lists.
    let all = client.view_all().unwrap();
    let hypot_free = all
        .imap_items(&square, (0..100i64).map(|i| vec![Value::from(i)]))
        .chunksize(10)
        .max_outstanding(3);
    let streamed: Vec<Value> =
        futures_executor::block_on(hypot_free.into_stream().map(|r| r.unwrap()).collect());
    assert_eq!(streamed, squares(100));
    // A failed item is an error at its index; the rest go on.
    let e = client
        .load_balanced_view()
        .imap(
            &square,
            vec![Value::from(1), Value::from("x"), Value::from(3)],
        )
        .collect::<Vec<_>>();
    assert_eq!(e[0], Ok(Value::from(1)));
    assert_eq!(e[1].as_ref().unwrap_err().item, Some(1));
    assert_eq!(e[2], Ok(Value::from(9)));
}

fn views_by_slice_follow_ipyparallel(backend: Backend) {
    let (client, square) = cluster(backend, 3);
    client.wait_for_engines(3, T).unwrap();
    let ids = |v: grid_client::DirectView| v.targets().to_vec();
    let e = |n: &[u32]| n.iter().map(|&i| EngineId(i)).collect::<Vec<_>>();
    assert_eq!(ids(client.select(0).unwrap()), e(&[0]));
    assert_eq!(ids(client.select(-1).unwrap()), e(&[2]));
    assert_eq!(ids(client.select(1..3).unwrap()), e(&[1, 2]));
    assert_eq!(ids(client.select(..).unwrap()), e(&[0, 1, 2]));
    assert_eq!(ids(client.select((.., 2)).unwrap()), e(&[0, 2]));
    assert_eq!(ids(client.select((.., -1)).unwrap()), e(&[2, 1, 0]));
    assert_eq!(
        ids(client.select(Select::all().step(2)).unwrap()),
        e(&[0, 2])
    );
    // rc[-1] is one engine: its result is a value; rc[::2] gives a list.
    let last = client.select(-1).unwrap();
    assert_eq!(
        last.apply_sync(&square, [Value::from(3)]).unwrap(),
        Value::from(9)
    );
    let every_other = client.select((.., 2)).unwrap();
    assert_eq!(
        every_other.apply_sync(&square, [Value::from(3)]).unwrap(),
        Value::from(vec![9, 9])
    );
    let r = every_other.apply_async(&square, [Value::from(2)]).unwrap();
    let by_engine = r.get_dict(T).unwrap();
    assert_eq!(by_engine.keys().copied().collect::<Vec<_>>(), e(&[0, 2]));
    let wrong = client.select(3).err().expect("index 3 of 3 engines");
    assert!(wrong.to_string().contains("out of range"), "{wrong}");
    assert!(client.select((.., 0)).is_err());
    let from_async = futures_executor::block_on(client.select_async(-2)).unwrap();
    assert_eq!(ids(from_async), e(&[1]));
}

fn waiting_for_results_engines_and_everything(backend: Backend) {
    let (client, square) = cluster(backend, 2);
    let engines = client.wait_for_engines(2, T).unwrap();
    assert_eq!(engines.len(), 2);
    let too_many = client.wait_for_engines(3, Some(Duration::from_millis(100)));
    assert!(too_many.is_err(), "only two engines");

    let spin = spin(&client);
    let slow = client
        .view_one(EngineId(1))
        .apply_async(&spin, Vec::<Value>::new())
        .unwrap();
    let lb = client.load_balanced_view().targets(vec![EngineId(0)]);
    let a = lb.apply_async(&square, [Value::from(2)]).unwrap();
    let m = lb
        .map_async(&square, vec![(0..5).map(Value::from).collect()])
        .unwrap();
    assert!(client.wait(&[&a, &m], T));
    assert!(!client.wait(&[&a, &slow], Some(Duration::from_millis(30))));
    assert!(client.outstanding().contains(&slow.msg_ids()[0]));
    assert!(!client.wait(&[], Some(Duration::from_millis(30))));
    slow.abort().unwrap();
    assert!(client.wait(&[], T), "everything done");
    assert!(client.outstanding().is_empty());
    futures_executor::block_on(client.wait_async(&[&a as &dyn Wait, &m]));
    assert_eq!(a.get(T).unwrap(), Value::from(4));
}

fn hub_queries_have_async_forms_on_any_executor(backend: Backend) {
    let (client, square) = cluster(backend, 2);
    let r = client
        .load_balanced_view()
        .apply_async(&square, [Value::from(5)])
        .unwrap();
    assert_eq!(r.get(T).unwrap(), Value::from(25));
    futures_executor::block_on(async {
        let engines = client.engines_async().await.unwrap();
        assert_eq!(engines.len(), 2);
        let queues: QueueStatus = client.queue_status_async().await.unwrap();
        assert_eq!(queues.engines.len(), 2);
        // The controller records the reply on its own schedule.
        let recorded: Vec<Reply> = loop {
            let got = client.fetch_results_async(r.msg_ids()).await.unwrap();
            if !got.is_empty() {
                break got;
            }
            std::thread::yield_now();
        };
        assert_eq!(recorded[0].status, Status::Ok);
        let (done, pending) = client.result_status_async(r.msg_ids()).await.unwrap();
        assert_eq!((done.len(), pending.len()), (1, 0));
        client.purge_results_async(r.msg_ids()).await.unwrap();
        assert!(
            client
                .fetch_results_async(r.msg_ids())
                .await
                .unwrap()
                .is_empty()
        );
        client.abort_async(Vec::new()).await.unwrap();
    });
}

fn the_in_flight_window_holds_back_and_aborts_unsent_work(backend: Backend) {
    let (client, square) = cluster(backend, 2);
    client.set_max_in_flight(3);
    assert_eq!(client.max_in_flight(), 3);
    let lb = client.load_balanced_view();
    let results: Vec<_> = (0..200)
        .map(|i| lb.apply_async(&square, [Value::from(i)]).unwrap())
        .collect();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.get(T).unwrap(), Value::from((i * i) as i64));
    }
    let m = lb
        .clone()
        .chunksize(4)
        .map_sync(&square, vec![(0..100).map(Value::from).collect()]);
    assert_eq!(m.unwrap(), squares(100));

    // One spinning task fills a window of one; the rest wait in the client,
    // and aborting them there answers them at once, without an engine.
    client.set_max_in_flight(1);
    let stuck = client
        .view_one(EngineId(0))
        .apply_async(&spin(&client), Vec::<Value>::new())
        .unwrap();
    let waiting: Vec<_> = (0..5)
        .map(|i| lb.apply_async(&square, [Value::from(i)]).unwrap())
        .collect();
    let refs: Vec<&dyn Wait> = waiting.iter().map(|w| w as &dyn Wait).collect();
    client.abort_results(&refs).unwrap();
    for w in &waiting {
        assert!(w.wait(T));
        let md = &w.metadata()[0];
        assert_eq!(md.status, Some(Status::Aborted));
        assert_eq!(md.engine_id, None, "never left the client");
    }
    stuck.abort().unwrap();
    assert!(stuck.wait(T));
    client.set_max_in_flight(grid_client::DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(
        lb.apply_sync(&square, [Value::from(7)]).unwrap(),
        Value::from(49)
    );
}
