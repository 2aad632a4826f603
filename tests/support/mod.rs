//! Shared test support: real servers the tests run against, and clients to fill them.
//!
//! Declared once in `tests/main.rs`; not every suite uses every helper.
#![allow(dead_code)]

pub mod appinsights;
pub mod azurite;
pub mod functions_queue_host;
pub mod host;
pub mod identity;
pub mod keyvault;
pub mod oci_push;
pub mod otlp;
pub mod process;
pub mod purge;
pub mod queue_service;
pub mod registry_server;
pub mod tls;
