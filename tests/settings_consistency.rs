//! The app settings are listed once (`acr_purge::settings`); the example local
//! settings and the function bindings must agree with that list.

use acr_purge::settings::{APP_SETTINGS, Reader};
use std::collections::BTreeSet;

fn read_json(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn local_settings_example_lists_every_handler_setting() {
    let example = read_json("local.settings.json.example");
    let names: BTreeSet<String> = example["Values"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let handler: BTreeSet<String> = APP_SETTINGS
        .iter()
        .filter(|s| s.reader == Reader::Handler)
        .map(|s| s.name.to_string())
        .collect();
    let local_only: BTreeSet<String> = ["FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"]
        .map(String::from)
        .into();
    assert_eq!(
        names
            .difference(&local_only)
            .cloned()
            .collect::<BTreeSet<_>>(),
        handler
    );
}

#[test]
fn bindings_match_the_handler_routes_and_settings() {
    let host = read_json("host.json");
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "handler"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    let timer = read_json("PurgeTimer/function.json");
    let binding = &timer["bindings"][0];
    assert_eq!(binding["type"], "timerTrigger");
    assert_eq!(binding["name"], "timer");
    assert_eq!(binding["schedule"], "%PURGE_SCHEDULE%");
    assert_eq!(binding["runOnStartup"], false);
    assert!(APP_SETTINGS.iter().any(|s| s.name == "PURGE_SCHEDULE"));
    let http = read_json("PurgeHttp/function.json");
    let bindings = http["bindings"].as_array().unwrap();
    assert_eq!(
        bindings.len(),
        2,
        "forwarding needs exactly httpTrigger in + http out"
    );
    assert_eq!(bindings[0]["type"], "httpTrigger");
    assert_eq!(bindings[0]["authLevel"], "function");
    assert_eq!(bindings[0]["route"], "purge/{runId?}");
    assert_eq!(bindings[1]["type"], "http");
}
