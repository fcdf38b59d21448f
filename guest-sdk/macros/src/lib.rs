//! The guest SDK macros (in progress).
