//! The deployment side agrees with the code: the app settings infra/ deploys are exactly
//! `settings::deployed()`, the functions the package zips are the folders with a
//! function.json, and host.json / function.json use the handler and settings as intended.
//!
//! Convention (infra/modules/functionapp.bicep): every app setting is one `NAME: value` line of
//! the object literal between the `// app-settings:begin` and `// app-settings:end` markers,
//! and that object is the only source of the site's app settings.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use acr_purge::settings::{self, APP_SETTINGS};

const BEGIN: &str = "// app-settings:begin";
const END: &str = "// app-settings:end";

/// Settings Flex Consumption rejects or that belong to other plans (azure.md §A5).
const FLEX_REJECTS: &[&str] = &[
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_TIME_ZONE",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "AzureWebJobsStorage",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Every .bicep file under infra/, sorted.
fn bicep_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "bicep") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("infra"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .bicep files under infra/");
    files
}

/// The app-setting names between the markers, in order, with the file they are in.
fn bicep_app_settings() -> (PathBuf, Vec<String>) {
    let holders: Vec<(PathBuf, String)> = bicep_files()
        .into_iter()
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .filter(|(_, text)| text.contains(BEGIN) || text.contains(END))
        .collect();
    assert_eq!(
        holders.len(),
        1,
        "exactly one .bicep file must hold the app-settings markers, found {:?}",
        holders.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let (path, text) = holders.into_iter().next().unwrap();
    assert_eq!(
        text.matches(BEGIN).count(),
        1,
        "one {BEGIN} in {}",
        path.display()
    );
    assert_eq!(
        text.matches(END).count(),
        1,
        "one {END} in {}",
        path.display()
    );
    let start = text.find(BEGIN).unwrap() + BEGIN.len();
    let end = text.find(END).unwrap();
    assert!(start < end, "{BEGIN} must come before {END}");

    let mut names = Vec::new();
    let mut object_lines = 0;
    for line in text[start..end].lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        // The opening `var appSettings = {` and the closing `}` of the object literal.
        if (line.ends_with('{') && !line.contains(':')) || line == "}" {
            object_lines += 1;
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not a `NAME: value` line between the markers: {line}"));
        let key = key.trim().trim_matches('\'');
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "odd app-setting name {key:?} in line: {line}"
        );
        assert!(
            !value.trim().is_empty(),
            "{key}: the value must be on the same line"
        );
        names.push(key.to_string());
    }
    assert_eq!(
        object_lines, 2,
        "the markers must enclose exactly one object literal"
    );
    (path, names)
}

#[test]
fn bicep_app_settings_are_exactly_the_deployed_settings() {
    let (path, names) = bicep_app_settings();
    let unique: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate app settings in {}: {names:?}",
        path.display()
    );

    let deployed: BTreeSet<&str> = settings::deployed().collect();
    let missing: Vec<_> = deployed.difference(&unique).collect();
    let extra: Vec<_> = unique.difference(&deployed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} and settings::deployed() differ: missing in Bicep {missing:?}, not in deployed() {extra:?}",
        path.display()
    );
    for name in &names {
        assert!(
            !FLEX_REJECTS.contains(&name.as_str()),
            "{name} must not be set on Flex Consumption"
        );
    }
}

#[test]
fn the_site_takes_its_settings_from_that_object_only() {
    let (path, _) = bicep_app_settings();
    let text = read(&path);
    assert!(
        text.contains("for setting in items(appSettings)"),
        "{}: siteConfig.appSettings must be built from the appSettings object",
        path.display()
    );
    assert_eq!(
        text.matches("appSettings: [").count(),
        1,
        "{}",
        path.display()
    );
    for file in bicep_files() {
        let text = read(&file);
        let other_sources = if file == path {
            0
        } else {
            text.matches("appSettings").count() + text.matches("'appsettings'").count()
        };
        assert_eq!(other_sources, 0, "{} sets app settings too", file.display());
        assert!(
            !text.contains("Microsoft.Web/sites/config"),
            "{}: a sites/config resource would replace the app settings",
            file.display()
        );
    }
}

#[test]
fn settings_list_is_well_formed() {
    let names: Vec<&str> = APP_SETTINGS.iter().map(|s| s.name).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate names in APP_SETTINGS");
    for name in settings::deployed() {
        assert!(
            !FLEX_REJECTS.contains(&name),
            "{name} must not be deployed on Flex Consumption"
        );
    }
}

/// Folders at the repository root that hold a function.json.
fn function_folders() -> BTreeSet<String> {
    fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("function.json").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The `FUNCTIONS=(...)` list of scripts/package.
fn packaged_functions() -> BTreeSet<String> {
    let script = read(&root().join("scripts/package"));
    let line = script
        .lines()
        .find(|l| l.starts_with("FUNCTIONS=("))
        .expect("scripts/package defines FUNCTIONS=(...)");
    line["FUNCTIONS=(".len()..line.rfind(')').expect("closing parenthesis")]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_package_holds_every_function_folder() {
    let folders = function_folders();
    assert_eq!(
        folders,
        BTreeSet::from([
            "PurgeHttp".to_string(),
            "PurgeQueue".to_string(),
            "PurgeTimer".to_string()
        ]),
        "function folders at the repository root"
    );
    assert_eq!(
        packaged_functions(),
        folders,
        "scripts/package FUNCTIONS vs folders with a function.json"
    );
}

#[test]
fn host_json_starts_the_handler_with_forwarding() {
    let host = json(&root().join("host.json"));
    assert_eq!(host["version"], "2.0");
    let custom = &host["customHandler"];
    assert_eq!(custom["description"]["defaultExecutablePath"], "handler");
    assert_eq!(custom["enableForwardingHttpRequest"], true);

    // The executable the package writes is the one host.json starts.
    let script = read(&root().join("scripts/package"));
    assert!(
        script.contains("EXECUTABLE=handler"),
        "scripts/package must zip the binary as `handler`"
    );
    let cargo = read(&root().join("Cargo.toml"));
    assert!(
        cargo.contains("name = \"handler\""),
        "Cargo.toml must build a binary named handler"
    );
}

#[test]
fn timer_schedule_comes_from_a_deployed_setting() {
    let timer = json(&root().join("PurgeTimer/function.json"));
    let bindings = timer["bindings"].as_array().expect("bindings");
    let trigger = bindings
        .iter()
        .find(|b| b["type"] == "timerTrigger")
        .expect("PurgeTimer has a timerTrigger");
    assert_eq!(trigger["schedule"], "%PURGE_SCHEDULE%");
    assert_eq!(settings::PURGE_SCHEDULE, "PURGE_SCHEDULE");
    assert!(settings::deployed().any(|n| n == settings::PURGE_SCHEDULE));
    // runOnStartup fires on every cold start and scale-out: it must stay off.
    assert_ne!(trigger["runOnStartup"], true);
}

#[test]
fn every_setting_a_binding_expands_is_deployed() {
    for folder in function_folders() {
        let text = read(&root().join(&folder).join("function.json"));
        let mut rest = text.as_str();
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let end = after
                .find('%')
                .unwrap_or_else(|| panic!("{folder}: unmatched %"));
            let name = &after[..end];
            assert!(
                settings::deployed().any(|n| n == name),
                "{folder}/function.json uses %{name}%, which infra does not deploy"
            );
            rest = &after[end + 1..];
        }
    }
}

/// The fleet queue is one name in the handler, both functions' bindings and the Bicep; the
/// poison queue is the host's `<queue>-poison`, deployed and watched by the alert; the queue
/// settings of host.json are those the README explains.
#[test]
fn the_fleet_queue_is_one_name_everywhere() {
    use acr_purge::functions::fanout;
    assert_eq!(
        fanout::POISON_QUEUE_NAME,
        format!("{}-poison", fanout::QUEUE_NAME)
    );
    let binding = |folder: &str, kind: &str| {
        let function = json(&root().join(folder).join("function.json"));
        function["bindings"]
            .as_array()
            .expect("bindings")
            .iter()
            .find(|b| b["type"] == kind)
            .unwrap_or_else(|| panic!("{folder} has a {kind} binding"))
            .clone()
    };
    let trigger = binding("PurgeQueue", "queueTrigger");
    assert_eq!(trigger["name"], fanout::TRIGGER_BINDING);
    assert_eq!(trigger["queueName"], fanout::QUEUE_NAME);
    for folder in ["PurgeTimer", "PurgeQueue"] {
        let output = binding(folder, "queue");
        assert_eq!(output["direction"], "out", "{folder}");
        assert_eq!(output["name"], fanout::OUTPUT_BINDING, "{folder}");
        assert_eq!(output["queueName"], fanout::QUEUE_NAME, "{folder}");
        assert_eq!(output["connection"], "AzureWebJobsStorage", "{folder}");
    }
    let storage = read(&root().join("infra/modules/storage.bicep"));
    for queue in [fanout::QUEUE_NAME, fanout::POISON_QUEUE_NAME] {
        assert!(
            storage.contains(&format!("name: '{queue}'")),
            "storage.bicep deploys {queue}"
        );
    }
    let alert = read(&root().join("infra/modules/alert.bicep"));
    assert!(
        alert.contains(fanout::POISON_QUEUE_NAME),
        "the alert watches the poison queue"
    );
    let host = json(&root().join("host.json"));
    let queues = &host["extensions"]["queues"];
    assert_eq!(queues["messageEncoding"], "none", "messages are JSON text");
    assert!(queues["maxDequeueCount"].as_u64().is_some_and(|n| n >= 2));
    // A redelivered message must find a dead holder's lease lapsed (60 s on Blob Storage).
    let visibility = queues["visibilityTimeout"]
        .as_str()
        .expect("visibilityTimeout");
    let seconds: Vec<u64> = visibility
        .split(':')
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(seconds.len(), 3, "{visibility}");
    let total = seconds[0] * 3600 + seconds[1] * 60 + seconds[2];
    assert!(
        total > u64::from(acr_purge::store::LEASE_SECONDS),
        "visibilityTimeout {visibility} must outlast a lease"
    );
    assert!(
        settings::APP_SETTINGS
            .iter()
            .any(|s| s.name == settings::STORAGE_QUEUE_SERVICE_URI)
    );
}

#[test]
fn webhook_route_matches_the_documented_url() {
    let http = json(&root().join("PurgeHttp/function.json"));
    let trigger = http["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .find(|b| b["type"] == "httpTrigger")
        .expect("PurgeHttp has an httpTrigger");
    let route = trigger["route"].as_str().expect("route");
    assert!(route.starts_with("purge"), "route {route}");
    let main = read(&root().join("infra/main.bicep"));
    assert!(
        main.contains("/api/purge'"),
        "main.bicep outputs the webhook URL .../api/purge"
    );
}

/// The telemetry contract (infra/README.md, "Telemetry contract"): dimensions of the `purge`
/// request, and the metrics with their dimensions.
const REQUEST_DIMENSIONS: &[&str] = &[
    "faas.trigger",
    "purge.trigger",
    "purge.registry",
    "purge.dry_run",
    "purge.run_id",
    "purge.invocation",
    "purge.run_status",
    "purge.tags_deleted",
    "purge.manifests_deleted",
    "purge.protected",
    "purge.failed",
    "purge.throttled",
    "purge.findings.kept_severe",
];
const METRICS: &[&str] = &[
    "purge.deleted",
    "purge.protected",
    "purge.throttled",
    "purge.failures",
    "purge.run.duration",
    "purge.findings.cleared",
];
const METRIC_DIMENSIONS: &[&str] = &["kind", "reason", "purge.severity"];

/// Every quoted value that follows `prefix` (`'x'` or `"x"`) in `text`.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        let rest = &rest[1..];
        let end = rest.find(quote).expect("closing quote");
        found.push(&rest[..end]);
    }
    found
}

/// Every "query" string in a workbook (items, parameters).
fn workbook_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(q) if key == "query" => out.push(q.clone()),
                    _ => workbook_queries(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| workbook_queries(v, out)),
        _ => {}
    }
}

#[test]
fn workbook_and_alert_follow_the_telemetry_contract() {
    let workbook_text = read(&root().join("infra/workbook.json"));
    assert!(
        workbook_text.contains("__APPINSIGHTS_ID__"),
        "workbook.json keeps the placeholder modules/workbook.bicep replaces"
    );
    let mut queries = Vec::new();
    workbook_queries(&json(&root().join("infra/workbook.json")), &mut queries);
    assert!(queries.len() > 5, "workbook queries: {}", queries.len());
    let alert = read(&root().join("infra/modules/alert.bicep"));
    queries.extend(
        quoted_after(&alert, "query: ")
            .iter()
            .map(|q| q.to_string()),
    );

    let mut dimensions_used = BTreeSet::new();
    let mut metrics_used = BTreeSet::new();
    for query in &queries {
        for name in quoted_after(query, "customDimensions[") {
            let known = REQUEST_DIMENSIONS.contains(&name) || METRIC_DIMENSIONS.contains(&name);
            assert!(known, "dimension {name:?} is not in the contract: {query}");
            dimensions_used.insert(name.to_string());
        }
        for name in quoted_after(query, "name == ") {
            if query.trim_start().starts_with("customMetrics") || METRICS.contains(&name) {
                assert!(
                    METRICS.contains(&name),
                    "metric {name:?} is not in the contract"
                );
                metrics_used.insert(name.to_string());
            } else {
                assert_eq!(name, "purge", "runs are the requests named purge: {query}");
            }
        }
    }
    for name in REQUEST_DIMENSIONS.iter().chain(METRIC_DIMENSIONS) {
        assert!(
            dimensions_used.contains(*name),
            "no query reads dimension {name}"
        );
    }
    for name in METRICS {
        assert!(metrics_used.contains(*name), "no query reads metric {name}");
    }

    let readme = read(&root().join("infra/README.md"));
    let contract = &readme[readme
        .find("## Telemetry contract")
        .expect("contract section")..];
    for name in REQUEST_DIMENSIONS
        .iter()
        .chain(METRICS)
        .chain(METRIC_DIMENSIONS)
    {
        assert!(
            contract.contains(*name),
            "README contract does not name {name}"
        );
    }
}

/// The policy the infra deploys by default parses as a valid policy document.
#[test]
fn the_default_policy_is_valid() {
    let main = read(&root().join("infra/main.bicep"));
    let line = main
        .lines()
        .find(|l| l.trim_start().starts_with("param purgePolicy string = '"))
        .expect("param purgePolicy with a default");
    let value = line
        .split_once("= '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .expect("a quoted default");
    acr_purge::policy::PolicyDocument::parse(value).expect("default policy");
    let parameters = json(&root().join("infra/main.parameters.json"));
    let value = parameters["parameters"]["purgePolicy"]["value"]
        .as_str()
        .expect("purgePolicy parameter");
    acr_purge::policy::PolicyDocument::parse(value).expect("parameters policy");
}

/// The run store's container is the one the handler opens by default, and the lifecycle rule
/// expires the runs in it, not the leases and checkpoints of runs under way.
#[test]
fn the_run_store_container_is_the_handlers_default() {
    let main = read(&root().join("infra/main.bicep"));
    let declared = format!(
        "var runsContainerName = '{}'",
        acr_purge::store::DEFAULT_CONTAINER
    );
    assert!(main.contains(&declared), "main.bicep lacks {declared}");
    let storage = read(&root().join("infra/modules/storage.bicep"));
    assert!(storage.contains("'${runsContainerName}/runs/'"));
    assert!(!storage.contains("'${runsContainerName}/registries/'"));
}

/// Built-in role "Azure Kubernetes Service RBAC Reader" (its role definition id is the same in
/// every tenant; learn.microsoft.com, "Azure built-in roles for Containers").
const AKS_RBAC_READER: &str = "7f6c6a51-bcf8-42ba-9220-52d62157d7db";

/// In-use protection's AKS read is granted as documented: an optional parameter (empty by
/// default, so nothing is granted unless asked), one resource-group deployment per listed
/// group (the offline type check has no Microsoft.ContainerService types to scope it on a
/// cluster), the AKS RBAC Reader role and nothing broader, in place before the app starts.
#[test]
fn the_aks_reader_role_is_optional_and_at_resource_group_scope() {
    let main = read(&root().join("infra/main.bicep"));
    assert!(
        main.contains("param aksReaderResourceGroupIds array = []"),
        "main.bicep declares aksReaderResourceGroupIds, empty by default"
    );
    let module = main
        .split("module aksReaders 'modules/aks-reader.bicep' = [")
        .nth(1)
        .expect("main.bicep deploys modules/aks-reader.bicep in a loop");
    let module = &module[..module.find("\n]").expect("end of the aksReaders loop")];
    assert!(
        module.contains("for groupId in aksReaderResourceGroupIds:"),
        "one deployment per listed resource group: {module}"
    );
    assert!(
        module.contains("scope: resourceGroup(split(groupId, '/')[2], split(groupId, '/')[4])"),
        "each deployment is scoped on the listed group (subscription and name of its id): {module}"
    );
    let app = main
        .split("module functionApp ")
        .nth(1)
        .expect("functionApp module");
    let depends = &app[..app.find("params:").expect("functionApp params")];
    assert!(
        depends.contains("aksReaders"),
        "the app waits for the AKS role as for the other in-use roles"
    );

    let reader = read(&root().join("infra/modules/aks-reader.bicep"));
    assert!(reader.contains("targetScope = 'resourceGroup'"));
    assert!(
        reader.contains(&format!("'{AKS_RBAC_READER}'")),
        "aks-reader.bicep grants Azure Kubernetes Service RBAC Reader"
    );
    assert_eq!(
        reader
            .matches("Microsoft.Authorization/roleAssignments@")
            .count(),
        1,
        "one role assignment, no other role"
    );
    assert!(reader.contains("guid(resourceGroup().id, principalId, aksRbacReaderRoleId)"));

    for doc in ["README.md", "infra/README.md"] {
        let text = read(&root().join(doc));
        assert!(
            text.contains("`aksReaderResourceGroupIds`"),
            "{doc} documents aksReaderResourceGroupIds"
        );
    }
}
