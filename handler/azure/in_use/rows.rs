//! What images a Resource Graph row names: its `properties` rebuilt from the projected
//! columns, and the image strings of each workload type (a Compose file's too).

use super::query::PROJECTED;
use serde_json::{Map, Value};

/// A row's `properties` as Resource Graph holds them, rebuilt from the columns of
/// [`PROJECTED`] (a column that is missing or null leaves its member out), over the row's
/// own `properties` when it has one.
pub(super) fn projected_properties(row: &Map<String, Value>) -> Value {
    let mut properties = match row.get("properties") {
        Some(Value::Object(members)) => members.clone(),
        _ => Map::new(),
    };
    for (column, path) in PROJECTED {
        let Some(value) = row.get(*column).filter(|v| !v.is_null()) else {
            continue;
        };
        let mut members = path.split('.').peekable();
        let mut at = &mut properties;
        while let Some(member) = members.next() {
            if members.peek().is_none() {
                at.insert(member.to_string(), value.clone());
                break;
            }
            let next = at
                .entry(member.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            let Value::Object(inner) = next else {
                break;
            };
            at = inner;
        }
    }
    Value::Object(properties)
}

/// The image strings of one row, by its type (a `COMPOSE|` value's images too); `Err` with
/// the value and why when a Compose file cannot be read.
pub(super) fn image_strings(
    resource_type: &str,
    properties: &Value,
) -> Result<Vec<String>, (String, String)> {
    let strings_at = |list: Option<&Value>, path: &str| -> Vec<String> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| c.pointer(path).and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match resource_type {
        "microsoft.app/containerapps" | "microsoft.app/jobs" => {
            let template = properties.get("template");
            let mut images = strings_at(template.and_then(|t| t.get("containers")), "/image");
            images.extend(strings_at(
                template.and_then(|t| t.get("initContainers")),
                "/image",
            ));
            images
        }
        "microsoft.app/sessionpools" => strings_at(
            properties
                .get("customContainerTemplate")
                .and_then(|t| t.get("containers")),
            "/image",
        ),
        "microsoft.containerinstance/containergroups"
        | "microsoft.containerinstance/containergroupprofiles" => {
            let mut images = strings_at(properties.get("containers"), "/properties/image");
            images.extend(strings_at(
                properties.get("initContainers"),
                "/properties/image",
            ));
            images
        }
        "microsoft.web/sites" | "microsoft.web/sites/slots" => {
            let mut images = Vec::new();
            for value in fx_values(properties) {
                match prefixed(&value, "DOCKER|") {
                    Some(_) => images.push(value),
                    None => {
                        if let Some(compose) = prefixed(&value, "COMPOSE|") {
                            images.extend(compose_images(compose).map_err(|detail| {
                                (
                                    format!("{}…", value.chars().take(40).collect::<String>()),
                                    detail,
                                )
                            })?);
                        }
                    }
                }
            }
            images
        }
        _ => Vec::new(),
    })
}

/// `value` after `prefix` (ignoring case), when it starts with it.
fn prefixed<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value[prefix.len()..].trim())
}

/// An App Service app's `LinuxFxVersion` / `WindowsFxVersion` values, from
/// `properties.siteConfig` (usually null in Resource Graph) and from
/// `properties.siteProperties.properties[]` (where Resource Graph holds them).
pub(super) fn fx_values(properties: &Value) -> Vec<String> {
    let mut values: Vec<String> = ["linuxFxVersion", "windowsFxVersion"]
        .iter()
        .filter_map(|k| properties.pointer(&format!("/siteConfig/{k}")))
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(items) = properties
        .pointer("/siteProperties/properties")
        .and_then(Value::as_array)
    {
        values.extend(items.iter().filter_map(|item| {
            let name = item.get("name").and_then(Value::as_str)?;
            let fx = name.eq_ignore_ascii_case("LinuxFxVersion")
                || name.eq_ignore_ascii_case("WindowsFxVersion");
            fx.then(|| item.get("value").and_then(Value::as_str))
                .flatten()
                .map(str::to_string)
        }));
    }
    values
}

/// Every `image:` of a base64 Compose file (`COMPOSE|<base64>`), read line by line: a
/// key `image` (after an optional `- `), its value unquoted, a trailing ` #` comment
/// dropped. A value that is not base64 or not UTF-8 is an error: its images are unknown.
fn compose_images(encoded: &str) -> Result<Vec<String>, String> {
    use base64::Engine;
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("the Compose file is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "the Compose file is not UTF-8".to_string())?;
    let mut images = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("- ").map(str::trim_start).unwrap_or(line);
        let Some(rest) = line.strip_prefix("image:") else {
            continue;
        };
        let mut value = rest.trim();
        if let Some((before, _)) = value.split_once(" #") {
            value = before.trim();
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        if value.is_empty() {
            return Err("an `image:` without a value (a multi-line value is not read)".to_string());
        }
        images.push(value.to_string());
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::super::follow_ups::may_serve_older_revisions;
    use super::*;
    use serde_json::json;

    #[test]
    fn projected_columns_rebuild_the_properties_the_readers_read() {
        let row = |value: Value| value.as_object().cloned().unwrap_or_default();
        let app = projected_properties(&row(json!({
            "id": "/a", "type": "microsoft.app/containerapps",
            "appContainers": [{"image": "r/app:1"}], "appInitContainers": null,
            "revisionsMode": "Multiple", "traffic": [{"revisionName": "r1", "weight": 100}],
            "latestRevisionName": "r2", "latestReadyRevisionName": "r1",
            "fqdn": null
        })));
        assert_eq!(
            app,
            json!({
                "template": {"containers": [{"image": "r/app:1"}]},
                "configuration": {"activeRevisionsMode": "Multiple",
                    "ingress": {"traffic": [{"revisionName": "r1", "weight": 100}]}},
                "latestRevisionName": "r2", "latestReadyRevisionName": "r1"
            })
        );
        assert!(may_serve_older_revisions(&app));
        let site = projected_properties(&row(json!({
            "siteProperties": [{"name": "LinuxFxVersion", "value": "DOCKER|r/web:2"}],
            "linuxFxVersion": null
        })));
        assert_eq!(fx_values(&site), ["DOCKER|r/web:2"]);
        let cluster = projected_properties(&row(json!({
            "fqdn": "c.hcp.westeurope.azmk8s.io", "aadProfile": {"managed": true},
            "privateCluster": false
        })));
        assert_eq!(
            cluster.pointer("/apiServerAccessProfile/enablePrivateCluster"),
            Some(&json!(false))
        );
        assert_eq!(cluster["fqdn"], "c.hcp.westeurope.azmk8s.io");
        // A row with whole `properties` (another query's) is read as it is.
        let whole = projected_properties(&row(
            json!({"properties": {"containers": [{"properties": {"image": "r/x"}}]}}),
        ));
        assert_eq!(
            whole.pointer("/containers/0/properties/image"),
            Some(&json!("r/x"))
        );
    }

    #[test]
    fn image_strings_by_type() {
        let app = json!({"template": {"containers": [{"image": "a"}, {"name": "no-image"}], "initContainers": [{"image": "b"}]}});
        assert_eq!(
            image_strings("microsoft.app/containerapps", &app).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            image_strings("microsoft.app/jobs", &app).unwrap(),
            ["a", "b"]
        );
        let aci = json!({"containers": [{"properties": {"image": "c"}}], "initContainers": [{"properties": {"image": "d"}}]});
        assert_eq!(
            image_strings("microsoft.containerinstance/containergroups", &aci).unwrap(),
            ["c", "d"]
        );
        assert_eq!(
            image_strings("microsoft.containerinstance/containergroupprofiles", &aci).unwrap(),
            ["c", "d"]
        );
        let pool = json!({"customContainerTemplate": {"containers": [{"image": "p"}, {"name": "no-image"}]}});
        assert_eq!(
            image_strings("microsoft.app/sessionpools", &pool).unwrap(),
            ["p"]
        );
        let site = json!({
            "siteConfig": {"linuxFxVersion": "DOCKER|e", "windowsFxVersion": null},
            "siteProperties": {"properties": [
                {"name": "LinuxFxVersion", "value": "DOCKER|f"},
                {"name": "WindowsFxVersion", "value": "NODE|18"},
                {"name": "Other", "value": "DOCKER|g"}
            ]}
        });
        assert_eq!(
            image_strings("microsoft.web/sites", &site).unwrap(),
            ["DOCKER|e", "DOCKER|f"]
        );
        assert!(
            image_strings("microsoft.storage/storageaccounts", &app)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn compose_files_name_every_image() {
        use base64::Engine;
        let compose = "services:\n  web:\n    image: \"myreg.azurecr.io/web:v1\" # main\n  side:\n    image: 'myreg.azurecr.io/side@sha256:00'\n  - image: nginx\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(compose);
        assert_eq!(
            compose_images(&encoded).unwrap(),
            [
                "myreg.azurecr.io/web:v1",
                "myreg.azurecr.io/side@sha256:00",
                "nginx"
            ]
        );
        let site = json!({"siteConfig": null, "siteProperties": {"properties": [
            {"name": "LinuxFxVersion", "value": format!("COMPOSE|{encoded}")}
        ]}});
        assert_eq!(
            image_strings("microsoft.web/sites", &site).unwrap().len(),
            3
        );
        let broken = json!({"siteProperties": {"properties": [
            {"name": "LinuxFxVersion", "value": "COMPOSE|not base64!"}
        ]}});
        assert!(image_strings("microsoft.web/sites/slots", &broken).is_err());
        let empty =
            base64::engine::general_purpose::STANDARD.encode("services:\n  a:\n    image:\n");
        assert!(compose_images(&empty).is_err(), "an image: without a value");
    }
}
