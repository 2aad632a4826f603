//! The integration tests, in one binary (one link on CI): each suite is a module, and
//! `support` holds the real servers and fakes they share.

mod support;

/// acr purge's acceptance cases through the `handler` binary against the emulator.
mod acr_parity;
/// in-use protection of what AKS pods run (a Kubernetes API emulator over TLS).
mod aks;
/// sign-in: managed identity (real azure_identity), token exchange and renewal, ABAC, Basic.
mod auth;
/// Defender for Cloud's findings: counted in the report, targeted by a rule.
mod defender_findings;
/// durable runs: deadlines, kill -9 and resumption, two instances, the store in Azurite.
mod durable;
/// request economy and pipelining, counted at the emulator against acr purge's requests.
mod economy;
/// a fleet: the timer's queue messages, PurgeQueue per registry with its own policy.
mod fleet;
/// a fleet on Azurite's queue, the host's queue trigger played: three instances, kill -9, continuations.
mod fleet_queue;
/// the `handler` binary started as the Functions host starts it.
mod functions_host;
/// infra/ deploys what the handler reads; the package and the workbook agree.
mod infra_consistency;
/// a property test of the planner over random registries.
mod plan_properties;
/// every invocation of a durable run makes progress, however short.
mod progress;
/// the registry client against a real `docker-registry`.
mod real_registry;
/// retention by count and the blast-radius guard, through the `handler` binary.
mod retention;
/// the blast-radius guard over a whole run (`--max-run-deletions`), through the `handler` binary.
mod run_limit;
/// the deliberate differences from acr purge, bad input, failures and races.
mod safety;
/// saved plans applied exactly after the registry changed; refusals; storage reclaimed.
mod saved_plans;
/// the app settings list, the local settings example and the bindings agree.
mod settings_consistency;
/// spans, metrics and events reach a real OTLP receiver and App Insights ingestion.
mod telemetry;
/// the registry over TLS, trusted through SSL_CERT_FILE.
mod tls;
/// in-use protection and age by last pull, with Resource Graph and Log Analytics emulated.
mod workload_protection;
/// workloads in use (Resource Graph) and last pulls (Log Analytics) against their emulators.
mod workloads;
