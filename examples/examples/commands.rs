//! WASI commands, live output and reproducible runs: `run` a command module
//! on engines (ipyparallel's `execute`/`run`) with argv, environment, stdin
//! and a read-only directory; watch its output arrive while it runs
//! (ipyparallel's iopub); and run it deterministically, so that its clock,
//! its random numbers and its fingerprint are the same on every engine.
//! Run it with `cargo run -p grid-examples --example commands`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use grid_client::{Client, Command, OutputChunk, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(bytes) = grid_examples::require(grid_examples::rust_command()) else {
        return Ok(()); // the Rust example guests are not built here
    };
    let client = Client::local(2)?;
    let cmd = client.module_from_bytes(&bytes)?;

    // dview.execute(...): a command on every engine; each value is its exit code.
    let setup = Command::new("cmd")
        .args(["--exit", "0"])
        .env("GREETING", "hello")
        .stdin(b"set up\n".to_vec());
    let r = client.view_all()?.run(&cmd, &setup)?;
    assert_eq!(r.get(None)?, Value::Array(vec![0.into(), 0.into()]));
    for m in r.metadata() {
        println!(
            "engine {:?}: {:?}",
            m.engine_id,
            String::from_utf8_lossy(&m.stdout)
        );
    }

    // Live output: every piece of a running task's stdout/stderr, as written.
    let seen = Arc::new(Mutex::new(String::new()));
    let shown = seen.clone();
    client.on_output(Some(Arc::new(move |chunk: &OutputChunk| {
        shown
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&chunk.data));
    })));
    let ticking = client
        .load_balanced_view()
        .run(&cmd, &Command::new("cmd").args(["--tick", "3", "100"]))?;
    // ar.stdout: the output so far, while it runs, then all of it.
    while !String::from_utf8_lossy(&ticking.stdout()[0]).contains("tick 0") {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ticking.get(None)?, Value::from(0));
    client.on_output(None);
    assert!(seen.lock().unwrap().contains("tick 2"));

    // A read-only directory: the command reads a file through it.
    let dir = std::env::temp_dir().join(format!("grid-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("input.txt"), "from the host\n")?;
    let reading = Command::new("cmd")
        .args(["--cat", "/in/input.txt"])
        .dir(&dir, "/in")?;
    let r = client.load_balanced_view().run(&cmd, &reading)?;
    assert_eq!(r.get(None)?, Value::from(0));
    assert!(r.stdout()[0].ends_with(b"from the host\n"));
    std::fs::remove_dir_all(&dir)?;

    // Deterministic: virtual clocks and seeded random bytes; the same output
    // and fingerprint wherever it runs.
    let lb = client.load_balanced_view().deterministic(true);
    let clock = Command::new("cmd").arg("--clock");
    let (a, b) = (lb.run(&cmd, &clock)?, lb.run(&cmd, &clock)?);
    assert!(client.wait(&[&a, &b], None));
    let (a, b) = (&a.metadata()[0], &b.metadata()[0]);
    println!("{}", String::from_utf8_lossy(&a.stdout));
    assert_eq!(a.stdout, b.stdout);
    let (fa, fb) = (a.fingerprint.as_ref(), b.fingerprint.as_ref());
    assert_eq!(fa.map(|f| f.digest()), fb.map(|f| f.digest()));
    assert!(fa.and_then(|f| f.fuel_used).is_some());
    Ok(())
}
