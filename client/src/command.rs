//! WASI commands: what `run` on a view executes.
//!
//! A [`Command`] is a module's `_start` with argv, environment, stdin and
//! read-only directory grants, the way `std::process::Command` describes a
//! process. Its task's value is the exit code (an integer; non-zero is a
//! value, not an error); its stdout and stderr stream live while it runs
//! and are in the result's metadata. A directory grant names a directory on
//! the *engine's* machine: a local cluster allows any, an engine of a
//! remote cluster only those its operator allowed (`grid engine
//! --allow-dir`), and refuses others with `bad_arguments`.

use std::path::Path;

use grid_proto::{Call, DirGrant};

use crate::Error;

/// A WASI command to run on engines (argv, env, stdin, directories).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    dirs: Vec<DirGrant>,
}

impl Command {
    /// A command whose `argv[0]` is `program` (the name the guest sees).
    pub fn new(program: impl Into<String>) -> Command {
        Command {
            argv: vec![program.into()],
            ..Command::default()
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Command {
        self.argv.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (the guest sees no other).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Command {
        self.env.push((key.into(), value.into()));
        self
    }

    /// What the command reads on stdin (nothing by default).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Command {
        self.stdin = bytes.into();
        self
    }

    /// Grants read-only access to the directory `host` (made absolute
    /// here), seen by the guest as `guest` (`.` for its working directory).
    pub fn dir(
        mut self,
        host: impl AsRef<Path>,
        guest: impl Into<String>,
    ) -> Result<Command, Error> {
        let host = host.as_ref();
        let absolute = std::path::absolute(host)
            .map_err(|e| Error::Usage(format!("cannot grant directory {}: {e}", host.display())))?;
        let host = absolute.to_str().ok_or_else(|| {
            Error::Usage(format!(
                "cannot grant directory {}: the path is not UTF-8",
                absolute.display()
            ))
        })?;
        self.dirs.push(DirGrant {
            host: host.to_string(),
            guest: guest.into(),
        });
        Ok(self)
    }

    /// The arguments, `argv[0]` first.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    pub(crate) fn call(&self) -> Call {
        Call::Command {
            argv: self.argv.clone(),
            env: self.env.clone(),
            stdin: self.stdin.clone(),
            dirs: self.dirs.clone(),
        }
    }
}
