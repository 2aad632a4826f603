//! Every environment variable the program reads, named once. The app settings of the
//! Function App are the single list ([`APP_SETTINGS`]) that the handler reads,
//! `local.settings.json.example` documents and `infra/` deploys; the other variables
//! (acr purge's, the Azure SDK's, TLS) are named below it, with the one function that reads
//! a variable for the run itself ([`abac_batch_size`]).

/// Who reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The handler reads it.
    Handler,
    /// The Functions host reads it (the handler never does).
    Host,
}

/// One app setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The name (environment variable).
    pub name: &'static str,
    /// Who reads it.
    pub reader: Reader,
    /// Whether `infra/` sets it on every deployment.
    pub deployed: bool,
    /// What it means.
    pub meaning: &'static str,
}

const fn handler(name: &'static str, deployed: bool, meaning: &'static str) -> Setting {
    Setting {
        name,
        reader: Reader::Handler,
        deployed,
        meaning,
    }
}

const fn host(name: &'static str, meaning: &'static str) -> Setting {
    Setting {
        name,
        reader: Reader::Host,
        deployed: true,
        meaning,
    }
}

/// `PURGE_REGISTRY`.
pub const PURGE_REGISTRY: &str = "PURGE_REGISTRY";
/// `PURGE_POLICY`.
pub const PURGE_POLICY: &str = "PURGE_POLICY";
/// `PURGE_POLICY_FILE`.
pub const PURGE_POLICY_FILE: &str = "PURGE_POLICY_FILE";
/// `PURGE_FLEET`.
pub const PURGE_FLEET: &str = "PURGE_FLEET";
/// `PURGE_FLEET_FILE`.
pub const PURGE_FLEET_FILE: &str = "PURGE_FLEET_FILE";
/// `AzureWebJobsStorage__queueServiceUri`.
pub const STORAGE_QUEUE_SERVICE_URI: &str = "AzureWebJobsStorage__queueServiceUri";
/// `PURGE_SCHEDULE`.
pub const PURGE_SCHEDULE: &str = "PURGE_SCHEDULE";
/// `PURGE_DRY_RUN`.
pub const PURGE_DRY_RUN: &str = "PURGE_DRY_RUN";
/// `PURGE_HTTP_DEADLINE_SECONDS`.
pub const PURGE_HTTP_DEADLINE_SECONDS: &str = "PURGE_HTTP_DEADLINE_SECONDS";
/// `AZURE_CLIENT_ID`.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// `KEY_VAULT_URL`.
pub const KEY_VAULT_URL: &str = "KEY_VAULT_URL";
/// `WEBHOOK_SECRET_NAME`.
pub const WEBHOOK_SECRET_NAME: &str = "WEBHOOK_SECRET_NAME";
/// `WEBHOOK_SECRET`.
pub const WEBHOOK_SECRET: &str = "WEBHOOK_SECRET";
/// `APPLICATIONINSIGHTS_CONNECTION_STRING`.
pub const APPLICATIONINSIGHTS_CONNECTION_STRING: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/// `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`.
pub const APPLICATIONINSIGHTS_AUTHENTICATION_STRING: &str =
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING";
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `AzureWebJobsStorage__accountName`: the app's storage account (host and run store).
pub const STORAGE_ACCOUNT_NAME: &str = "AzureWebJobsStorage__accountName";
/// `AzureWebJobsStorage__blobServiceUri`: the blob endpoint, where it is not the public
/// cloud's `https://{account}.blob.core.windows.net`.
pub const STORAGE_BLOB_SERVICE_URI: &str = "AzureWebJobsStorage__blobServiceUri";
/// `AzureWebJobsStorage__clientId`: the identity used for that storage.
pub const STORAGE_CLIENT_ID: &str = "AzureWebJobsStorage__clientId";
/// `PURGE_RUNS_CONTAINER`.
pub const PURGE_RUNS_CONTAINER: &str = "PURGE_RUNS_CONTAINER";
/// `PURGE_STATE_DIR`.
pub const PURGE_STATE_DIR: &str = "PURGE_STATE_DIR";
/// `PURGE_ARM_ENDPOINT`: Azure Resource Manager, where Resource Graph is asked which
/// workloads run which images.
pub const PURGE_ARM_ENDPOINT: &str = "PURGE_ARM_ENDPOINT";
/// The public cloud's Resource Manager.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// `PURGE_LOGS_ENDPOINT`: the Log Analytics query API.
pub const PURGE_LOGS_ENDPOINT: &str = "PURGE_LOGS_ENDPOINT";
/// The public cloud's Log Analytics query API.
pub const DEFAULT_LOGS_ENDPOINT: &str = "https://api.loganalytics.io";
/// `PURGE_LOGS_WORKSPACE_ID`: the workspace holding the registry's repository events.
pub const PURGE_LOGS_WORKSPACE_ID: &str = "PURGE_LOGS_WORKSPACE_ID";
/// `FUNCTIONS_CUSTOMHANDLER_PORT`.
pub const FUNCTIONS_CUSTOMHANDLER_PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// Every app setting, with its reader and meaning.
pub const APP_SETTINGS: &[Setting] = &[
    handler(
        PURGE_REGISTRY,
        true,
        "Registry to purge: login server (myreg.azurecr.io), name, or explicit URL.",
    ),
    handler(
        PURGE_POLICY,
        true,
        "The purge policy as JSON (schema: policy.schema.json). Takes precedence over PURGE_POLICY_FILE.",
    ),
    handler(
        PURGE_POLICY_FILE,
        false,
        "Path of a policy JSON file, relative to the app root, used when PURGE_POLICY is empty (default: policy.json in the package).",
    ),
    handler(
        PURGE_FLEET,
        false,
        "A fleet of registries as JSON: {\"default\": {policy}, \"registries\": [{\"registry\": …, \"policy\" or \"policyFile\": …}]}; replaces PURGE_REGISTRY and PURGE_POLICY (README: Fleets).",
    ),
    handler(
        PURGE_FLEET_FILE,
        false,
        "Path of a fleet JSON file, relative to the app root, used when PURGE_FLEET is empty.",
    ),
    handler(
        PURGE_SCHEDULE,
        true,
        "NCRONTAB schedule (UTC) of PurgeTimer, six fields, e.g. `0 0 3 * * *`.",
    ),
    handler(
        PURGE_DRY_RUN,
        true,
        "`true` forces every run to be a dry run, whatever the policy or webhook asks (safe roll-out).",
    ),
    handler(
        PURGE_HTTP_DEADLINE_SECONDS,
        false,
        "How long the webhook waits for a run before answering 202 with a run id (default 200).",
    ),
    handler(
        AZURE_CLIENT_ID,
        true,
        "Client id of the user-assigned managed identity used for the registry, Key Vault and telemetry.",
    ),
    handler(
        KEY_VAULT_URL,
        true,
        "Key Vault holding the webhook secret, e.g. https://myvault.vault.azure.net/.",
    ),
    handler(
        WEBHOOK_SECRET_NAME,
        true,
        "Name of the webhook secret in that Key Vault.",
    ),
    handler(
        WEBHOOK_SECRET,
        false,
        "The webhook secret itself (e.g. a Key Vault reference); used when KEY_VAULT_URL is not set.",
    ),
    handler(
        APPLICATIONINSIGHTS_CONNECTION_STRING,
        true,
        "Application Insights connection string: traces, metrics and logs go there.",
    ),
    handler(
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING,
        true,
        "`ClientId=<identity client id>;Authorization=AAD`: send telemetry with an Entra token (local auth off).",
    ),
    handler(
        OTEL_EXPORTER_OTLP_ENDPOINT,
        false,
        "An OTLP/HTTP collector to send traces to as well (standard OTEL_* variables apply).",
    ),
    handler(
        STORAGE_ACCOUNT_NAME,
        true,
        "Storage account of the host and of the run store (records, plans, audit logs, checkpoints, leases), reached with the managed identity (no keys).",
    ),
    handler(
        STORAGE_BLOB_SERVICE_URI,
        false,
        "Blob endpoint of that account, where it is not https://{account}.blob.core.windows.net (sovereign clouds, Azurite).",
    ),
    host("AzureWebJobsStorage__credential", "`managedidentity`."),
    host(
        STORAGE_QUEUE_SERVICE_URI,
        "Queue endpoint of that account: the fleet queue (acr-purge-fleet) PurgeTimer writes and PurgeQueue reads, with the managed identity.",
    ),
    handler(
        STORAGE_CLIENT_ID,
        true,
        "Client id of the identity used for that storage (the host's and the run store's).",
    ),
    handler(
        PURGE_RUNS_CONTAINER,
        true,
        "Blob container of the run store (default acr-purge-runs; created if missing).",
    ),
    handler(
        PURGE_STATE_DIR,
        false,
        "A local directory for the run store when no storage account is set (runs are then known to this machine only).",
    ),
    handler(
        PURGE_ARM_ENDPOINT,
        false,
        "Azure Resource Manager endpoint for Resource Graph (in-use protection); default https://management.azure.com. Tokens are asked for {scheme}://{host}/.default.",
    ),
    handler(
        PURGE_LOGS_ENDPOINT,
        false,
        "Log Analytics query API endpoint (age by last pull); default https://api.loganalytics.io. Tokens are asked for {scheme}://{host}/.default.",
    ),
    handler(
        PURGE_LOGS_WORKSPACE_ID,
        true,
        "Workspace (customer) id of the Log Analytics workspace receiving the registry's ContainerRegistryRepositoryEvents; empty when pull logs are not deployed.",
    ),
];

/// The settings `infra/` must deploy, by name.
pub fn deployed() -> impl Iterator<Item = &'static str> {
    APP_SETTINGS.iter().filter(|s| s.deployed).map(|s| s.name)
}

/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: an OTLP endpoint for traces alone.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `OTEL_SERVICE_NAME`: the service name on spans (default `acr-purge`).
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `FUNCTIONS_APP_ROOT_PATH`: where the host put the package (the default `policy.json`).
pub const FUNCTIONS_APP_ROOT_PATH: &str = "FUNCTIONS_APP_ROOT_PATH";
/// `ABAC_BATCH_SIZE`: repositories per token on ABAC registries (acr purge's variable).
pub const ABAC_BATCH_SIZE: &str = "ABAC_BATCH_SIZE";
/// `FUNCTIONS_HTTPWORKER_PORT`: the port under its older name.
pub const FUNCTIONS_HTTPWORKER_PORT: &str = "FUNCTIONS_HTTPWORKER_PORT";
/// `SSL_CERT_FILE`: extra trusted roots (PEM) for every outbound client.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// `IDENTITY_ENDPOINT`: set where a managed identity is available.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// `AZURE_FEDERATED_TOKEN_FILE`: set where workload identity is available.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// `ABAC_BATCH_SIZE` as a positive number, or `default` when unset or unusable.
pub fn abac_batch_size(default: usize) -> usize {
    std::env::var(ABAC_BATCH_SIZE)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}
