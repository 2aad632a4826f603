//! Shared test support.
#![allow(dead_code)]

pub mod identity;
pub mod purge;
