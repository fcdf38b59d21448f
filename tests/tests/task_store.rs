//! The hub's task store through the client, on both buses (`local::` and
//! `nats::`): a second client gets results of tasks it did not submit
//! (done, still running, and after the submitting client has gone),
//! queries records with a typed filter, and purges them; an unknown id
//! fails clearly.
//!
//! The stores' rules are unit-tested in `controller/src/store/`; these
//! tests check that the requests, the hub and the client carry them.

use std::time::Duration;

use grid_client::{
    EngineId, Error, Purge, RecordKey, RecordStatus, Status, TaskError, TaskFilter, Timestamp,
    Value,
};
use grid_controller::ControllerConfig;
use grid_tests::{Backend, Cluster, on_both_buses};

on_both_buses!(
    another_client_gets_results_done_running_and_of_a_client_gone,
    db_query_filters_records_and_purge_forgets_them,
    an_unknown_task_fails_by_name,
);

const PATIENCE: Option<Duration> = Some(Duration::from_secs(60));

fn demo(client: &Cluster) -> Option<grid_client::Module> {
    let path = grid_examples::require_path(grid_examples::rust_guest())?;
    Some(client.load_module(path).expect("demo module uploads"))
}

fn cluster(backend: Backend, engines: usize) -> Cluster {
    grid_tests::cluster_with(backend, engines, ControllerConfig::default())
}

fn another_client_gets_results_done_running_and_of_a_client_gone(backend: Backend) {
    let cluster = cluster(backend, 2);
    let Some(demo) = demo(&cluster) else { return };
    let submitter = cluster.another_client();
    let module = submitter
        .load_module(grid_examples::rust_guest().unwrap())
        .unwrap();
    let (square, sleep) = (module.func("square"), module.func("sleep_ms"));
    let lb = submitter.load_balanced_view();
    let quick = lb.apply_async(&square, [Value::from(7)]).unwrap();
    assert_eq!(quick.get(PATIENCE).unwrap(), Value::from(49));
    let slow = lb.apply_async(&sleep, [Value::from(400)]).unwrap();
    let chunked = lb
        .clone()
        .chunksize(3)
        .map_async(&square, vec![(1..=6).map(Value::from).collect()])
        .unwrap();
    let mut ids = quick.msg_ids();
    ids.extend(slow.msg_ids());
    ids.extend(chunked.msg_ids());
    assert_eq!(ids.len(), 4);

    // Another client, while the slow one still runs.
    let watched = cluster.get_result(ids.clone()).unwrap();
    assert_eq!(watched.msg_ids(), ids);
    let got = watched.get(PATIENCE).unwrap();
    assert_eq!(
        got,
        Value::Array(vec![
            Value::from(49),
            Value::from(400),
            // A chunk's items are its value.
            Value::Array((1..=3).map(|x| Value::from(x * x)).collect()),
            Value::Array((4..=6).map(|x| Value::from(x * x)).collect()),
        ])
    );
    let meta = watched.metadata();
    assert_eq!(meta[1].status, Some(Status::Ok));
    assert!(meta[1].engine_id.is_some());
    assert!(meta[1].completed >= meta[1].started);
    // The submitter's own result is unchanged by the other client's watch.
    assert_eq!(slow.get(PATIENCE).unwrap(), Value::from(400));

    // After the submitting client has gone.
    let gone = {
        let r = lb.apply_async(&square, [Value::from(9)]).unwrap();
        r.wait(PATIENCE);
        r.msg_ids()
    };
    drop(lb);
    drop(module);
    drop(submitter);
    let later = cluster.get_result(gone).unwrap();
    assert_eq!(later.get(PATIENCE).unwrap(), Value::Array(vec![81.into()]));

    // A client asking for its own task still running shares its result.
    let own = cluster
        .load_balanced_view()
        .apply_async(&demo.func("sleep_ms"), [Value::from(200)])
        .unwrap();
    let again = cluster.get_result(own.msg_ids()).unwrap();
    assert_eq!(again.get(PATIENCE).unwrap(), Value::Array(vec![200.into()]));
    assert_eq!(own.get(PATIENCE).unwrap(), Value::from(200));
}

fn db_query_filters_records_and_purge_forgets_them(backend: Backend) {
    let cluster = cluster(backend, 2);
    let Some(demo) = demo(&cluster) else { return };
    let before = Timestamp::now();
    let lb = cluster.load_balanced_view();
    let ok = lb
        .map_async(
            &demo.func("square"),
            vec![(0..4).map(Value::from).collect()],
        )
        .unwrap();
    let failed = lb
        .apply_async(&demo.func("checked_sqrt"), [Value::from(-1.0)])
        .unwrap();
    let on_one = cluster
        .view_one(EngineId(1))
        .apply_async(&demo.func("hello"), [Value::from("store")])
        .unwrap();
    assert!(cluster.wait(&[&ok, &failed, &on_one], PATIENCE));
    // The controller records results on its own schedule.
    let mine = TaskFilter::new().client_in([cluster.id()]);
    let all = wait_for_records(&cluster, &mine, 6);
    assert!(all.iter().all(|r| r.submitted > before));

    let errors = cluster
        .db_query(
            mine.clone().status_in([RecordStatus::Error]),
            &[RecordKey::Stderr],
        )
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].msg_id, failed.msg_ids()[0]);
    assert!(matches!(errors[0].error, Some(TaskError::Guest(_))));
    assert_eq!(errors[0].value, None, "not asked for");

    let on_engine_1 = cluster
        .db_query(mine.clone().engine_in([EngineId(1)]), &[RecordKey::Value])
        .unwrap();
    let hello = on_engine_1
        .iter()
        .find(|r| r.msg_id == on_one.msg_ids()[0])
        .expect("the direct task ran on engine 1");
    assert_eq!(hello.value, Some(Value::from("hello, store")));
    assert!(
        on_engine_1
            .iter()
            .all(|r| r.engine.unwrap().id == EngineId(1))
    );

    let none_later = cluster
        .db_query(mine.clone().submitted_gt(Timestamp::now()), &[])
        .unwrap();
    assert!(none_later.is_empty());
    let limited = cluster.db_query(mine.clone().limit(2), &[]).unwrap();
    assert_eq!(limited.len(), 2);

    let (done, pending) = cluster.result_status(ok.msg_ids()).unwrap();
    assert_eq!((done.len(), pending.len()), (ok.msg_ids().len(), 0));

    // Purge by ids, then by age, then everything.
    assert_eq!(cluster.purge_results(failed.msg_ids()).unwrap(), 1);
    assert_eq!(
        cluster
            .db_query(mine.clone().status_in([RecordStatus::Error]), &[])
            .unwrap(),
        vec![]
    );
    assert_eq!(cluster.purge_results(Purge::Before(before)).unwrap(), 0);
    let left = cluster.purge_everything().unwrap();
    assert!(left >= 5, "{left}");
    assert!(cluster.db_query(mine, &[]).unwrap().is_empty());
    let (done, pending) = cluster.result_status(ok.msg_ids()).unwrap();
    assert_eq!((done.len(), pending.len()), (0, ok.msg_ids().len()));
}

fn an_unknown_task_fails_by_name(backend: Backend) {
    let cluster = cluster(backend, 1);
    let stranger = grid_client::MsgId::new();
    let r = cluster.get_result(vec![stranger]).unwrap();
    match r.get(PATIENCE) {
        Err(Error::Remote(e)) => {
            let text = e.to_string();
            assert!(text.contains(&stranger.to_string()), "{text}");
            assert!(text.contains("does not know"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

/// The records `filter` selects, once there are `n` of them.
fn wait_for_records(
    cluster: &Cluster,
    filter: &TaskFilter,
    n: usize,
) -> Vec<grid_client::TaskRecord> {
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let records = cluster.db_query(filter.clone(), &[]).unwrap();
        let done = records.iter().filter(|r| r.status.is_some()).count();
        if done >= n {
            return records;
        }
        assert!(std::time::Instant::now() < give_up, "{records:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
