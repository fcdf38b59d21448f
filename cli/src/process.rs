//! The background processes of `grid cluster start`, and how `grid cluster
//! stop` finds exactly those again.
//!
//! A child is detached from the terminal: a new session (so neither Ctrl-C
//! nor the terminal's hangup reaches it), stdin from /dev/null, stdout and
//! stderr into a log file. It is recorded by pid *and* identity: the boot id
//! and its start time (clock ticks since boot, field 22 of
//! `/proc/<pid>/stat`). A pid alone is not enough: once our process has
//! exited, the kernel may hand its pid to an unrelated process, which must
//! never get our signals. The identity is checked right before each signal
//! (the remaining window, microseconds, would need pidfds to close).
//! Linux only: it reads `/proc`.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How often waits look again.
pub const POLL: Duration = Duration::from_millis(50);

/// A process we started, as recorded in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// What it is: `nats-server`, `controller`, `engine`, or `starter` (a
    /// `grid cluster start` still at work).
    pub role: String,
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` when it ran: pids and start times
    /// start over at every boot.
    pub boot_id: String,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot.
    pub start_time: u64,
    /// Its command line, for people reading the state file.
    pub command: Vec<String>,
    /// Where its stdout and stderr go.
    pub log: Option<PathBuf>,
}

impl Recorded {
    /// Records process `pid`, which must not be able to exit unnoticed
    /// meanwhile: our own child (not yet waited for) or ourselves.
    pub fn identify(
        role: &str,
        pid: u32,
        command: Vec<String>,
        log: Option<PathBuf>,
    ) -> anyhow::Result<Recorded> {
        let stat =
            Stat::read(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}/stat of the {role}"))?;
        Ok(Recorded {
            role: role.to_string(),
            pid,
            boot_id: boot_id().context("cannot read the boot id")?,
            start_time: stat.start_time,
            command,
            log,
        })
    }

    /// Whether the process we started still runs (a zombie does not): same
    /// boot, same pid, same start time.
    pub fn is_running(&self) -> bool {
        if boot_id().ok().as_deref() != Some(self.boot_id.as_str()) {
            return false;
        }
        Stat::read(self.pid)
            .is_some_and(|s| s.start_time == self.start_time && !matches!(s.state, 'Z' | 'X'))
    }

    /// Sends `signal` if the process is still the one we started; returns
    /// whether it was sent.
    pub fn signal(&self, signal: Signal) -> bool {
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        self.is_running() && kill(Pid::from_raw(pid), signal).is_ok()
    }

    /// `controller (pid 123)`.
    pub fn describe(&self) -> String {
        format!("{} (pid {})", self.role, self.pid)
    }
}

/// The fields of `/proc/<pid>/stat` that matter here.
struct Stat {
    state: char,
    start_time: u64,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// `pid (comm) state ppid ...`: comm may hold spaces and parentheses,
    /// so fields are counted from the last `)`; state is field 3, start
    /// time field 22.
    fn parse(text: &str) -> Option<Stat> {
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Stat {
            state: fields.first()?.chars().next()?,
            start_time: fields.get(22 - 3)?.parse().ok()?,
        })
    }
}

fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

/// Starts `program args...` detached, with `envs` added to its environment,
/// its output in `log` (emptied first: it is this run's log).
pub fn spawn_detached(
    program: &Path,
    args: &[String],
    envs: &[(&str, String)],
    log: &Path,
) -> anyhow::Result<Child> {
    let out =
        File::create(log).with_context(|| format!("cannot open log file {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("cannot open log file {}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: between fork and exec only setsid runs, which is
    // async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// Waits until none of `processes` runs any more, or `timeout` passes;
/// returns those still running.
pub fn wait_gone<'a>(processes: &[&'a Recorded], timeout: Duration) -> Vec<&'a Recorded> {
    let deadline = Instant::now() + timeout;
    loop {
        let running: Vec<&Recorded> = processes
            .iter()
            .copied()
            .filter(|p| p.is_running())
            .collect();
        if running.is_empty() || Instant::now() >= deadline {
            return running;
        }
        std::thread::sleep(POLL);
    }
}

/// Stops `processes`: SIGTERM, then SIGKILL for those still running after
/// `grace`. Returns those that survived even that.
pub fn terminate<'a>(processes: &[&'a Recorded], grace: Duration) -> Vec<&'a Recorded> {
    for p in processes {
        p.signal(Signal::SIGTERM);
    }
    let stubborn = wait_gone(processes, grace);
    for p in &stubborn {
        p.signal(Signal::SIGKILL);
    }
    wait_gone(&stubborn, grace)
}

/// The last `n` lines of a log file (none if it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Where `name` is on PATH, if it is an executable file there.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let line = "3860 (a (weird) name) S 3855 3855 29547 0 -1 4194304 98 0 0 0 0 0 0 0 \
                    20 0 1 0 411499 3133440 389 18446744073709551615";
        let stat = Stat::parse(line).expect("parses");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 411499);
        assert!(Stat::parse("12 (short) R 1").is_none());
    }

    #[test]
    fn we_are_running_and_a_changed_start_time_is_another_process() {
        let me = Recorded::identify("test", std::process::id(), vec![], None).expect("identify");
        assert!(me.is_running());
        let other = Recorded {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!other.is_running());
        assert!(!other.signal(Signal::SIGTERM), "never signals a stranger");
        let rebooted = Recorded {
            boot_id: "another boot".into(),
            ..me
        };
        assert!(!rebooted.is_running());
    }

    #[test]
    fn an_exited_child_is_not_running() {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let recorded = Recorded::identify("true", child.id(), vec![], None).expect("identify");
        child.wait().expect("wait");
        assert!(wait_gone(&[&recorded], Duration::from_secs(10)).is_empty());
    }
}
