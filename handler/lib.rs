//! acr-purge: keeps Azure Container Registries clean.
//!
//! The crate reads as its dependencies point, from the pure core to the adapters:
//!
//! - the pure core, no I/O: [`policy`] (filters, ages, rules, limits, validated before any
//!   request) and [`plan`] (the decision on every tag and manifest, with a reason whose
//!   meaning for safety is decided in one exhaustive `match`, `plan::Verdict`);
//! - [`model`]: what the registry lists (tags, manifests, bodies) as the planner reads it,
//!   compact (shared digests and names, integer times), with no I/O: the planner takes
//!   it without importing the client;
//! - [`registry`]: the ACR data-plane client (sign-in, paging, pacing at the rate card,
//!   retries, throttling, a circuit breaker); it knows nothing of policy;
//! - [`azure`]: what Azure knows of the registry's images (workloads running them, from
//!   Resource Graph, ARM and AKS; last pulls, from Log Analytics; Defender's findings),
//!   read-only, failing closed, with one retry policy;
//! - [`run`]: one purge, the only stage that drives I/O: catalog → plan every repository →
//!   execute (verified, ordered deletions) → audit events;
//! - [`report`]: what a run did, the JSON contract read by the command line, the Functions
//!   handler and telemetry; `report::text` owns every acr purge output line and
//!   `report::RunError` every way a run fails;
//! - what outlives a run: [`store`] (records, plans, audit log, leases and checkpoints, in
//!   Blob Storage or a directory), [`durable`] (single flight, resumption after a kill,
//!   the engine's journal on the store) and [`saved`] (reviewed plans applied exactly);
//! - [`launch`]: the one launch path every trigger takes (connect, record, drive, seal);
//! - adapters, thin: [`cli`] (`handler purge`, `apply`, `runs`, `demo`, `emulator`,
//!   `serve`) and [`functions`] (the Azure Functions custom handler: timer, queue, webhook);
//! - plumbing: [`telemetry`] (OpenTelemetry to Application Insights and OTLP),
//!   [`outbound`] (HTTP clients, trusted roots, the Azure credential) and [`settings`]
//!   (every environment variable, named once).
//!
//! Names say one thing: "run" alone is the engine ([`run`]); a run's record is the
//! store's, its status the webhook's (`functions::run_status`), its turn the queue's. A
//! type takes its module's noun where a bare noun is taken elsewhere (`InUseScope`,
//! `QueueScope`, `TokenScope` beside `plan::Scope`).
//!
//! The ACR, Resource Graph, Log Analytics, ARM and Kubernetes emulators the tests and
//! `handler demo` run against are their own crate, `acr_emulator` (`crates/emulator/`),
//! sharing no code with the clients; the deployed build leaves them out (the default
//! `emulators` feature off).

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
