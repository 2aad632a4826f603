//! Prints the KQL queries the handler sends, built by the same functions it uses, as JSON
//! `[{"source", "schema", "query"}]` for `scripts/check_kql.mjs` (run by `scripts/check-infra`):
//! the pull-log queries (`azure::pulls`, against `ContainerRegistryRepositoryEvents`) and
//! the Resource Graph queries (`azure::in_use`, against `Resources` and
//! `ResourceContainers`; `azure::findings`, against `securityresources`).
//!
//! Parameters are representative: a login server, and excluded pullers with a `"` and a `\`
//! (which the query builder must escape into a valid string literal).
//!
//! Run: `cargo run --quiet --example kql_queries`

use acr_purge::azure::{findings, in_use, pulls};
use serde_json::json;

fn main() {
    let registry = "myregistry.azurecr.io";
    let pullers = vec![
        "00000000-0000-0000-0000-000000000001".to_string(),
        "scanner \"nightly\" C:\\agents".to_string(),
    ];
    let queries = json!([
        {
            "source": "handler/azure/pulls.rs: pulls_query (no excluded pullers)",
            "schema": "registryEvents",
            "query": pulls::pulls_query(registry, &[]),
        },
        {
            "source": "handler/azure/pulls.rs: pulls_query (excludePullers)",
            "schema": "registryEvents",
            "query": pulls::pulls_query(registry, &pullers),
        },
        {
            "source": "handler/azure/pulls.rs: coverage_query",
            "schema": "registryEvents",
            "query": pulls::coverage_query(registry),
        },
        {
            "source": "handler/azure/in_use/query.rs: IN_USE_QUERY",
            "schema": "resourceGraph",
            "query": in_use::IN_USE_QUERY,
        },
        {
            "source": "handler/azure/in_use/query.rs: SUBSCRIPTIONS_QUERY",
            "schema": "resourceGraph",
            "query": in_use::SUBSCRIPTIONS_QUERY,
        },
        {
            "source": "handler/azure/findings.rs: findings_query",
            "schema": "resourceGraph",
            "query": findings::findings_query(registry),
        },
    ]);
    println!("{queries:#}");
}
