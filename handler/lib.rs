//! acr-purge: keeps Azure Container Registries clean.
//!
//! The engine is a pipeline with one module per stage, free of Azure Functions and
//! HTTP-server concerns, so the same code serves the Functions handler, `handler purge` and
//! the tests:
//!
//! - [`policy`]: filters, ages and rules, validated before any request;
//! - [`registry`]: the ACR data-plane client (sign-in, paging, retries, throttling);
//! - [`inventory`]: reading one repository completely before anything is deleted;
//! - [`plan`]: the decision on every tag and manifest, with its reason;
//! - [`execute`]: the deletions, verified and ordered;
//! - [`report`]: outcomes, summary and acr purge's text lines;
//! - [`engine`]: one whole run.
//!
//! [`emulator`] is a stateful ACR emulator (tests and `handler demo`); [`cli`] and
//! [`commands`] are the command line.

#![warn(missing_docs)]

pub mod cli;
pub mod functions;
pub mod outbound;
pub mod plan;
pub mod policy;
pub mod registry;
pub mod report;
pub mod run;
pub mod settings;
pub mod telemetry;
