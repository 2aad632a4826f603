//! acr-purge: keeps Azure Container Registries clean.
//!
//! The engine (policy → inventory → plan → execute → report) is free of Azure Functions and
//! HTTP-server concerns, so the same code serves the Functions handler, `handler purge` and
//! the tests.

pub mod plan;
pub mod policy;
pub mod registry;
