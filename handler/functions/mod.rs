//! The Azure Functions custom handler: the HTTP server the Functions host starts and calls
//! (`PurgeTimer`, `PurgeHttp`), its configuration and the webhook.

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
pub mod runner;
pub mod runs;
pub mod secret;
pub mod server;
pub mod webhook;

pub use server::serve;
