//! What Azure knows about a registry's images besides the registry: which workloads run
//! them ([`in_use`], Azure Resource Graph, with [`arm`] lists and AKS pods from [`aks`]),
//! when they were last pulled ([`pulls`], the registry's `ContainerRegistryRepositoryEvents`
//! in Log Analytics) and which carry unresolved vulnerability findings ([`findings`],
//! Defender for Cloud through Resource Graph). The clients are read-only, sign in with the
//! given Azure credential (a token per endpoint, the audience `{scheme}://{host}/.default`
//! of the endpoint, so sovereign clouds and tests are a setting away:
//! [`crate::settings::PURGE_ARM_ENDPOINT`], [`crate::settings::PURGE_LOGS_ENDPOINT`]),
//! call Azure one way ([`http`]: one retry policy, one answer-size cap) and fail closed:
//! any failed, partial or unreadable answer is an error, never a shorter list.
//!
//! They know nothing of policy or plans; the caller decides what an answer protects.
//! [`setup`] builds what they share (credential, HTTP client, endpoints) from the
//! environment.

pub mod aks;
pub mod arm;
pub mod findings;
pub mod http;
pub mod in_use;
pub mod pulls;
pub mod setup;
mod table;

pub use http::{MAX_ANSWER_BYTES, audience};
