//! Why the images in use are not known: every way the in-use lookup fails closed.

use crate::azure::aks::ClusterError;
use crate::azure::arm::ArmError;

/// Why the images in use are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InUseError {
    /// No subscription or management group was given.
    #[error("in-use lookup: no subscription or management group to look in")]
    NoScope,
    /// No token, or an endpoint a token must not be sent to.
    #[error("in-use lookup at {endpoint}: {detail}")]
    Credential {
        /// The Resource Graph endpoint.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// Scopes the identity cannot read: Resource Graph leaves them out of its answers
    /// without an error, so their workloads would count as absent.
    #[error(
        "in-use lookup: cannot read {}: Resource Graph leaves out what the identity cannot read, so their workloads would count as absent (grant Reader there, or remove them from protectInUse)",
        scopes.join(", ")
    )]
    ScopesUnreadable {
        /// The subscriptions (and management groups with no readable subscription).
        scopes: Vec<String>,
    },
    /// The request did not get an answer.
    #[error("in-use lookup, page {page} ({scope}): request failed: {detail}")]
    Request {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// What failed.
        detail: String,
    },
    /// A non-2xx answer.
    #[error("in-use lookup, page {page} ({scope}): HTTP {status}: {detail}")]
    Status {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// The HTTP status.
        status: u16,
        /// Azure's error code and message.
        detail: String,
    },
    /// Resource Graph said the result is truncated or limited, or returned fewer rows than
    /// it counted.
    #[error("in-use lookup, page {page} ({scope}): partial answer: {detail}")]
    Partial {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// What was partial.
        detail: String,
    },
    /// An answer that is not what the API documents.
    #[error("in-use lookup, page {page} ({scope}): unreadable answer: {detail}")]
    Unreadable {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// What was wrong.
        detail: String,
    },
    /// A resource provider's list (sidecars, revisions, executions) could not be read.
    #[error("in-use lookup: {resource_id}: {error}")]
    Arm {
        /// The workload.
        resource_id: String,
        /// What failed.
        error: ArmError,
    },
    /// An AKS cluster whose pods cannot be listed: what it runs is unknown.
    #[error(
        "in-use lookup: cannot read the pods of AKS cluster {cluster}: {error} (grant the identity Azure Kubernetes Service RBAC Reader there, or list the cluster under inUseExcludeClusters to leave its pods unprotected)"
    )]
    Cluster {
        /// The cluster's resource id.
        cluster: String,
        /// Why.
        error: ClusterError,
    },
    /// An image of this registry that cannot be parsed, so it cannot be protected.
    #[error(
        "in-use lookup: {resource_id} runs {image:?}, an image of this registry that cannot be parsed: {detail}"
    )]
    Image {
        /// The workload.
        resource_id: String,
        /// The image string.
        image: String,
        /// Why it is not an image reference.
        detail: String,
    },
}
