//! The Azure Functions custom handler: the HTTP server the Functions host starts and calls
//! (`PurgeTimer`, `PurgeQueue`, `PurgeHttp`), its configuration and the webhook.
//!
//! Naming: a name here says one thing, and never reuses a name another module gives to
//! something else. "Run" alone is the engine (`crate::run`); here a run's *status* is
//! [`run_status`] (what the status URL answers), its *turn* is [`queue`], one purge for a
//! trigger is [`runner`], and the store's runs are `crate::store`'s records. Types carry
//! their module's noun where the bare noun is taken: [`queue::QueueScope`] (not
//! `plan::Scope`), [`queue::SharedResult`] (not `report::Outcome`),
//! [`secret::SignatureCheck`] (not `plan::Verdict`), [`webhook::WebhookRequest`] (not
//! `durable::RunRequest` or an HTTP request), [`runner::RunFinished`] (not
//! `run::Finished`).

pub mod applies;
pub mod config;
pub mod fanout;
pub mod fleet;
pub mod listener;
pub mod proof;
pub mod protocol;
pub mod queue;
pub mod queued;
pub mod route;
pub mod run_status;
pub mod runner;
pub mod secret;
pub mod server;
pub mod webhook;

pub use server::serve;
