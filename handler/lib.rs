//! acr-purge: keeps Azure Container Registries clean.
//!
//! The crate reads as its dependencies point, from the pure core to the adapters:
//!
//! - the pure core, no I/O: [`policy`] (filters, ages, rules, validated before any
//!   request) and [`plan`] (the decision on every tag and manifest, with a reason whose
//!   meaning for safety is decided in one exhaustive `match`, `plan::Verdict`);
//! - [`model`]: what the registry lists (tags, manifests, bodies) as the planner reads it,
//!   compact (shared digests and names, integer times), with no I/O;
//! - [`registry`]: the ACR data-plane client (sign-in, paging, retries, throttling, a
//!   circuit breaker); it knows nothing of policy;
//! - [`run`]: one purge, the only stage that drives I/O: catalog → plan every repository →
//!   execute (verified, ordered deletions) → audit events;
//! - [`launch`]: the one launch path every trigger takes (connect, record, drive, seal);
//! - [`report`]: what a run did, the JSON contract read by the command line, the Functions
//!   handler and telemetry; `report::text` owns every acr purge output line and
//!   `report::RunError` every way a run fails;
//! - [`azure`]: what Azure knows of the registry's images (workloads running them,
//!   from Resource Graph; last pulls, from Log Analytics; Defender's findings), read-only,
//!   failing closed, with one retry policy;
//! - adapters, thin: [`cli`] (`handler purge`, `demo`, `emulator`, `serve`) and
//!   [`functions`] (the Azure Functions custom handler);
//! - plumbing: [`telemetry`] (OpenTelemetry to Application Insights and OTLP),
//!   [`outbound`] (HTTP clients, trusted roots, the Azure credential) and [`settings`]
//!   (every environment variable, named once).
//!
//! The ACR emulator the tests and `handler demo` run against is its own crate,
//! `acr_emulator` (`crates/emulator/`), sharing no code with the client.

#![warn(missing_docs)]

pub mod azure;
pub mod cli;
pub mod durable;
pub mod functions;
pub mod launch;
pub mod model;
pub mod outbound;
pub mod plan;
pub mod policy;
pub mod registry;
pub mod report;
pub mod run;
pub mod saved;
pub mod settings;
pub mod store;
pub mod telemetry;
