//! Shared test support: real servers the tests run against, and clients to fill them.
//!
//! Declare with `mod support;` in a test file. Not every test file uses every helper.
#![allow(dead_code)]

pub mod appinsights;
pub mod host;
pub mod identity;
pub mod keyvault;
pub mod oci_push;
pub mod otlp;
pub mod purge;
pub mod registry_server;
pub mod tls;
