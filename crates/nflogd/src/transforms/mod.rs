//! Transforms applied to events inside the source thread, before fan-out.

pub mod action;
