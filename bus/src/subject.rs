//! Subjects and subscription patterns, with NATS's rules.
//!
//! A subject is one or more non-empty tokens separated by dots, without
//! whitespace: `grid.default.engine.3.task`. A subscription may use wildcards:
//! `*` stands for exactly one token and `>`, only as the last token, for one or
//! more remaining tokens. [`Pattern`] is a subscription subject parsed once, so
//! that [`Pattern::matches`], which runs for every published message, neither
//! allocates nor re-validates. This file knows nothing of who subscribes or how
//! messages travel; that is `local.rs`'s business.

use std::fmt;
use std::str::FromStr;

use crate::BusError;

/// The token that matches exactly one token.
const ONE_TOKEN: &str = "*";
/// The token that matches all remaining tokens (at least one); last only.
const REST: &str = ">";

/// Checks that `subject` is a valid subject: non-empty dot-separated tokens, no
/// empty token, no whitespace. With `allow_wildcards`, a token may be `*`, and
/// the last one `>`; without, such tokens are refused (publishing needs a
/// concrete subject). A wildcard character inside a longer token (`a*`) is a
/// plain character, as in NATS.
pub fn validate_subject(subject: &str, allow_wildcards: bool) -> Result<(), BusError> {
    if subject.is_empty() {
        return Err(invalid(subject));
    }
    let mut tokens = subject.split('.').peekable();
    while let Some(token) = tokens.next() {
        let is_last = tokens.peek().is_none();
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(invalid(subject));
        }
        let wildcard_allowed = match token {
            ONE_TOKEN => allow_wildcards,
            REST => allow_wildcards && is_last,
            _ => true,
        };
        if !wildcard_allowed {
            return Err(invalid(subject));
        }
    }
    Ok(())
}

/// Checks a queue group name: NATS wants it non-empty, without whitespace.
pub(crate) fn validate_queue(queue: &str) -> Result<(), BusError> {
    if queue.is_empty() || queue.chars().any(char::is_whitespace) {
        return Err(BusError::Other(format!(
            "invalid queue group name {queue:?}"
        )));
    }
    Ok(())
}

fn invalid(subject: &str) -> BusError {
    BusError::InvalidSubject(subject.to_string())
}

/// One token of a pattern, before the optional trailing `>`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    /// `*`: any single token.
    AnyOne,
}

/// A subscription subject, parsed: what a subscriber listens to.
///
/// Matching against a concrete subject walks the subject's tokens once and
/// compares them with the pre-split pattern; a pattern without wildcards is a
/// plain string comparison.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as written, for display and for indexing literal patterns.
    source: Box<str>,
    /// The tokens before a trailing `>`.
    tokens: Box<[Token]>,
    /// Whether the pattern ends in `>` (one or more further tokens).
    rest: bool,
    /// No `*` and no `>`: matches exactly one subject, `source`.
    literal: bool,
}

impl Pattern {
    /// Parses a subscription subject (wildcards allowed).
    pub fn parse(subject: &str) -> Result<Pattern, BusError> {
        validate_subject(subject, true)?;
        let mut tokens = Vec::new();
        let mut rest = false;
        for token in subject.split('.') {
            match token {
                ONE_TOKEN => tokens.push(Token::AnyOne),
                // Validation put `>` last.
                REST => rest = true,
                literal => tokens.push(Token::Literal(literal.into())),
            }
        }
        let literal = !rest && tokens.iter().all(|t| matches!(t, Token::Literal(_)));
        Ok(Pattern {
            source: subject.into(),
            tokens: tokens.into_boxed_slice(),
            rest,
            literal,
        })
    }

    /// Whether a message published on `subject` reaches this pattern's
    /// subscribers. `subject` is assumed valid (publishing validates it).
    pub fn matches(&self, subject: &str) -> bool {
        if self.literal {
            return *self.source == *subject;
        }
        let mut parts = subject.split('.');
        for token in self.tokens.iter() {
            let Some(part) = parts.next() else {
                return false;
            };
            if let Token::Literal(literal) = token
                && **literal != *part
            {
                return false;
            }
        }
        // `>` needs at least one more token; otherwise there must be none.
        parts.next().is_some() == self.rest
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard, so it matches only itself.
    pub fn is_literal(&self) -> bool {
        self.literal
    }
}

impl FromStr for Pattern {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Pattern, BusError> {
        Pattern::parse(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching_table() {
        // (pattern, subject, matches)
        let table = [
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b", false),
            ("a.b.c", "a.b.c.d", false),
            ("a.b.c", "a.b.x", false),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.x.c", true),
            ("a.*.c", "a.c", false),
            ("a.*.c", "a.b.b.c", false),
            ("a.*.c", "a.b.d", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c.d", true),
            // `>` needs at least one token.
            ("a.>", "a", false),
            ("a.>", "b.c", false),
            (">", "a", true),
            (">", "a.b.c", true),
            ("*.>", "a", false),
            ("*.>", "a.b", true),
            ("a.*.>", "a.b.c", true),
            ("a.*.>", "a.b", false),
            (
                "grid.default.result.>",
                "grid.default.result.client-1",
                true,
            ),
            (
                "grid.default.engine.*.task",
                "grid.default.engine.12.task",
                true,
            ),
            (
                "grid.default.engine.*.task",
                "grid.default.engine.12.control",
                false,
            ),
            // A wildcard character inside a token is literal.
            ("a*.b", "a*.b", true),
            ("a*.b", "ax.b", false),
        ];
        for (pattern, subject, expected) in table {
            let parsed = Pattern::parse(pattern).unwrap();
            assert_eq!(
                parsed.matches(subject),
                expected,
                "{pattern} against {subject}"
            );
        }
    }

    #[test]
    fn literal_patterns_are_recognised() {
        assert!(Pattern::parse("a.b").unwrap().is_literal());
        assert!(!Pattern::parse("a.*").unwrap().is_literal());
        assert!(!Pattern::parse("a.>").unwrap().is_literal());
        assert_eq!(Pattern::parse("a.>").unwrap().as_str(), "a.>");
    }

    #[test]
    fn invalid_subjects_are_refused() {
        for subject in [
            "", ".", "a.", ".a", "a..b", "a b", "a.\tb", "a.b\n", " ", "a.>.b", ">.a",
        ] {
            assert_eq!(
                validate_subject(subject, true),
                Err(BusError::InvalidSubject(subject.to_string())),
                "{subject:?}"
            );
            assert!(Pattern::parse(subject).is_err(), "{subject:?}");
        }
    }

    #[test]
    fn wildcards_only_where_allowed() {
        for subject in ["a.*", "*", "a.>", ">", "*.b.>"] {
            assert!(validate_subject(subject, true).is_ok(), "{subject}");
            assert!(validate_subject(subject, false).is_err(), "{subject}");
        }
        for subject in [
            "a",
            "a.b.c",
            "_INBOX.abc",
            "a*.b>",
            "grid.default.hub.register",
        ] {
            assert!(validate_subject(subject, false).is_ok(), "{subject}");
        }
    }
}
