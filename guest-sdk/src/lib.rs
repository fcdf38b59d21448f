//! The Rust guest SDK (in progress).
