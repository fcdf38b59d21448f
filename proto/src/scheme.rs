//! The scheduling schemes of ipyparallel, by name.
//!
//! A cluster's controller runs one [`Scheme`] (`grid controller --scheme`);
//! clients learn it from the controller (`HubRequest::Info`) because one
//! scheme, `pure`, changes where they send load-balanced work. What each
//! scheme does is the scheduler's business (`grid-controller`'s
//! `scheduler.rs`); this file only names them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the scheduler chooses among eligible engines with room
/// (ipyparallel's schemes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// The engine with the fewest outstanding tasks; ties go to the lowest id.
    #[default]
    LeastLoad,
    /// The engine that was given a task least recently (never counts as
    /// longest ago); ties go to the lowest id.
    Lru,
    /// Two engines drawn at random; the less recently used of the two.
    TwoBin,
    /// Two engines drawn at random, each weighted by the inverse of its
    /// load (an idle engine a million times likelier than one with a
    /// task); the less loaded of the two.
    Weighted,
    /// One engine drawn at random.
    PlainRandom,
    /// No scheduler: load-balanced tasks go to a NATS queue group that the
    /// engines share, and NATS picks one per task. The controller still
    /// records every task; dependencies, retries, targets, timeouts and the
    /// high-water mark need a scheduler and are refused. Work that reaches
    /// a scheduler of this scheme anyway (`sched.submit`) is placed by
    /// least load.
    Pure,
}

impl Scheme {
    /// Every scheme, in the order `--help` lists them.
    pub const ALL: [Scheme; 6] = [
        Scheme::LeastLoad,
        Scheme::Lru,
        Scheme::TwoBin,
        Scheme::Weighted,
        Scheme::PlainRandom,
        Scheme::Pure,
    ];

    /// The scheme's name as ipyparallel spells it (`leastload`, `lru`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::LeastLoad => "leastload",
            Scheme::Lru => "lru",
            Scheme::TwoBin => "twobin",
            Scheme::Weighted => "weighted",
            Scheme::PlainRandom => "plainrandom",
            Scheme::Pure => "pure",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheme name that this scheduler does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scheduler scheme {0:?}: use leastload, lru, twobin, weighted, plainrandom or pure"
)]
pub struct UnknownScheme(pub String);

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Scheme, UnknownScheme> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.name() == s)
            .ok_or_else(|| UnknownScheme(s.to_string()))
    }
}
