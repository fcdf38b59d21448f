//! WASI commands through the client, live output and reproducible runs
//! (issue 11), each test once on the LocalBus and once on a real
//! nats-server: `run` on load-balanced and direct views, output that
//! reaches the client while the command runs (iopub), deterministic
//! fingerprints that do not depend on the cluster, and directory grants
//! that only the engines' operator can allow.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grid_client::{Command, Module, OutputChunk, Stream, Value};
use grid_tests::{Backend, Cluster, on_both_buses};

const T: Option<Duration> = Some(Duration::from_secs(60));

on_both_buses!(
    a_command_streams_its_output_while_it_runs,
    direct_views_run_a_command_on_every_engine,
    deterministic_runs_match_on_any_cluster,
    directory_grants_need_the_operator,
);

/// A cluster and the example WASI command on it (`None`: not built here).
fn setup(backend: Backend, engines: usize) -> Option<(Cluster, Module)> {
    let bytes = grid_examples::require(grid_examples::rust_command())?;
    let cluster = grid_tests::cluster(backend, engines);
    let module = cluster.module_from_bytes(&bytes).expect("uploads");
    Some((cluster, module))
}

fn a_command_streams_its_output_while_it_runs(backend: Backend) {
    let Some((cluster, cmd)) = setup(backend, 2) else {
        return;
    };
    let seen: Arc<Mutex<Vec<OutputChunk>>> = Arc::default();
    let record = seen.clone();
    cluster.on_output(Some(Arc::new(move |c: &OutputChunk| {
        record.lock().unwrap().push(c.clone())
    })));
    let command = Command::new("cmd").args(["--tick", "5", "200"]);
    let result = cluster.load_balanced_view().run(&cmd, &command).unwrap();
    // The first tick arrives long before the command ends (after ~1 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&result.stdout()[0]).contains("tick 0") {
        assert!(Instant::now() < deadline, "no live output");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!result.ready(), "live output came only at the end");
    assert_eq!(result.get(T).unwrap(), Value::from(0));
    cluster.on_output(None);
    let meta = &result.metadata()[0];
    let text = String::from_utf8_lossy(&meta.stdout);
    assert!(
        text.ends_with("tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n"),
        "{text}"
    );
    assert_eq!(result.stdout()[0], meta.stdout, "complete once done");
    // What was streamed is a prefix of the captured output, in order.
    let streamed: Vec<u8> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.stream == Stream::Stdout)
        .flat_map(|c| c.data.clone())
        .collect();
    assert!(meta.stdout.starts_with(&streamed));
    assert!(String::from_utf8_lossy(&streamed).contains("tick 3"));
    assert_eq!(meta.stderr, b"done\n");
}

fn direct_views_run_a_command_on_every_engine(backend: Backend) {
    let Some((cluster, cmd)) = setup(backend, 2) else {
        return;
    };
    let view = cluster.view_all().unwrap();
    let command = Command::new("cmd")
        .args(["--exit", "3"])
        .env("GREETING", "hola")
        .stdin(b"up\n".to_vec());
    let result = view.run(&cmd, &command).unwrap();
    assert_eq!(
        result.get(T).unwrap(),
        Value::Array(vec![Value::from(3), Value::from(3)])
    );
    for m in result.metadata() {
        assert!(m.engine_id.is_some());
        assert_eq!(
            String::from_utf8_lossy(&m.stdout),
            "args: --exit 3\nGREETING=hola\nUP\n"
        );
    }
    // ipyparallel's name for the same.
    let again = view.execute(&cmd, &Command::new("cmd")).unwrap();
    assert_eq!(
        again.get(T).unwrap(),
        Value::Array(vec![0.into(), 0.into()])
    );
}

fn deterministic_runs_match_on_any_cluster(backend: Backend) {
    let Some((small, cmd)) = setup(backend, 1) else {
        return;
    };
    let run = |cluster: &Cluster, module: &Module| {
        let view = cluster.load_balanced_view().deterministic(true);
        let results: Vec<_> = (0..4)
            .map(|_| {
                view.run(module, &Command::new("cmd").arg("--clock"))
                    .unwrap()
            })
            .collect();
        results
            .iter()
            .map(|r| {
                assert_eq!(r.get(T).unwrap(), Value::from(0));
                let m = &r.metadata()[0];
                (m.stdout.clone(), m.fingerprint.as_ref().unwrap().digest())
            })
            .collect::<Vec<_>>()
    };
    let one = run(&small, &cmd);
    drop(small);
    let Some((big, cmd)) = setup(backend, 3) else {
        return;
    };
    let three = run(&big, &cmd);
    assert_eq!(one, three);
    assert!(one.windows(2).all(|w| w[0] == w[1]), "every run the same");
    let text = String::from_utf8_lossy(&one[0].0);
    assert!(text.contains("now_ns=1577836800000000000"), "{text}");
    // Without it, the host's time shows.
    let host = big
        .load_balanced_view()
        .run(&cmd, &Command::new("cmd").arg("--clock"));
    let host = host.unwrap();
    host.wait(T);
    assert!(!String::from_utf8_lossy(&host.stdout()[0]).contains("now_ns=1577836800000000000"));
}

fn directory_grants_need_the_operator(backend: Backend) {
    let Some((cluster, cmd)) = setup(backend, 1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "granted\n").unwrap();
    let command = Command::new("cmd")
        .args(["--cat", "/in/data.txt"])
        .dir(dir.path(), "/in")
        .unwrap();
    let result = cluster.load_balanced_view().run(&cmd, &command).unwrap();
    match backend {
        // A local cluster's operator is its client: it may grant anything.
        Backend::Local => {
            assert_eq!(result.get(T).unwrap(), Value::from(0));
            assert!(result.stdout()[0].ends_with(b"granted\n"));
        }
        // These engines were started without allowed directories.
        Backend::Nats => {
            let e = result.get(T).unwrap_err().to_string();
            assert!(
                e.contains("cannot grant") && e.contains("--allow-dir"),
                "{e}"
            );
        }
    }
}
