//! The Resource Graph and Log Analytics emulators over HTTP.

use acr_emulator::{
    GraphFault, GraphResource, LogAnalyticsEmulator, LogsFault, RepositoryEvent,
    ResourceGraphEmulator,
};
use chrono::{Duration, Utc};
use serde_json::{Value, json};

const QUERY: &str = "Resources | where type in~ ('Microsoft.App/containerApps') | project id, properties | order by id asc";

fn graph() -> ResourceGraphEmulator {
    let emulator = ResourceGraphEmulator::new();
    emulator.set_expected_token(Some("t0ken"));
    for (sub, name) in [("s1", "a"), ("s1", "b"), ("s2", "c"), ("s3", "d")] {
        emulator.add(GraphResource::new(
            sub,
            "rg",
            "Microsoft.App/containerApps",
            name,
            json!({ "n": name }),
        ));
    }
    emulator.add(GraphResource::new(
        "s1",
        "rg",
        "Microsoft.Storage/storageAccounts",
        "st",
        json!({}),
    ));
    emulator.set_management_group("mg", &["s2", "s3"]);
    emulator
}

async fn post(
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn rg_url(base: &str) -> String {
    format!("{base}/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01")
}

#[tokio::test]
async fn resource_graph_pages_scopes_and_formats() {
    let emulator = graph();
    emulator.set_page_size(2);
    let server = emulator.start().await.unwrap();
    let url = rg_url(&server.url);

    let (status, _, body) = post(&url, None, json!({"query": QUERY})).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "AuthenticationFailed");
    let (status, ..) = post(&url, Some("wrong"), json!({"query": QUERY})).await;
    assert_eq!(status, 401);

    let request = json!({"subscriptions": ["s1", "s2"], "query": QUERY});
    let (status, headers, first) = post(&url, Some("t0ken"), request.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["x-ms-user-quota-resets-after"], "00:00:05");
    assert_eq!(first["totalRecords"], 3);
    assert_eq!(first["count"], 2);
    assert_eq!(first["resultTruncated"], "false");
    assert_eq!(
        first["data"][0]["id"],
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.App/containerApps/a"
    );
    let token = first["$skipToken"].as_str().unwrap().to_string();
    let mut next = request.clone();
    next["options"] = json!({"$skipToken": token, "resultFormat": "table"});
    let (status, _, second) = post(&url, Some("t0ken"), next).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["count"], 1);
    assert!(second.get("$skipToken").is_none());
    assert_eq!(
        second["data"]["columns"][1],
        json!({"name": "properties", "type": "object"})
    );
    assert_eq!(second["data"]["rows"][0][1], json!({"n": "c"}));

    // A token is bound to its query and scopes.
    let other = json!({"subscriptions": ["s1"], "query": QUERY, "options": {"$skipToken": token}});
    let (status, _, body) = post(&url, Some("t0ken"), other).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BadRequest");

    let (_, _, by_group) = post(
        &url,
        Some("t0ken"),
        json!({"managementGroups": ["mg"], "query": QUERY}),
    )
    .await;
    assert_eq!(by_group["totalRecords"], 2);
    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"managementGroups": ["nope"], "query": QUERY}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"query": "Resources | summarize count() by type"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("summarize"),
        "{body}"
    );
    let (status, _, body) = post(&url, Some("t0ken"), json!({"query": "Resources | take 3"})).await;
    assert_eq!(status, 400, "{body}");

    let (status, _, body) = post(
        &format!("{}/providers/Microsoft.ResourceGraph/resources", server.url),
        Some("t0ken"),
        json!({"query": QUERY}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("MissingApiVersionParameter"))
    );
    let recorded = emulator.requests();
    assert_eq!(recorded[0].authorization, None);
    assert_eq!(recorded[2].authorization.as_deref(), Some("Bearer t0ken"));
    assert_eq!(recorded[2].body, request);
    assert_eq!(recorded[2].status, 200);
}

#[tokio::test]
async fn resource_graph_faults() {
    let emulator = graph();
    emulator.set_page_size(2);
    let server = emulator.start().await.unwrap();
    let url = rg_url(&server.url);
    let request = json!({"subscriptions": ["s1", "s2", "s3"], "query": QUERY});

    emulator.inject(GraphFault::Truncate);
    let (_, _, body) = post(&url, Some("t0ken"), request.clone()).await;
    assert_eq!(body["resultTruncated"], "true");
    assert!(body.get("$skipToken").is_none());
    emulator.clear_faults();

    emulator.inject(GraphFault::FailPage {
        page: 2,
        status: 503,
    });
    let (status, _, first) = post(&url, Some("t0ken"), request.clone()).await;
    assert_eq!(status, 200);
    let mut next = request.clone();
    next["options"] = json!({"$skipToken": first["$skipToken"]});
    let (status, _, body) = post(&url, Some("t0ken"), next).await;
    assert_eq!(status, 503);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("page 2")
    );
    emulator.clear_faults();

    emulator.inject(GraphFault::Throttle {
        count: 1,
        retry_after_seconds: 3,
    });
    let (status, headers, _) = post(&url, Some("t0ken"), request.clone()).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(headers["x-ms-user-quota-remaining"], "0");
    let (status, ..) = post(&url, Some("t0ken"), request).await;
    assert_eq!(status, 200);
}

const EVENTS: &str = "ContainerRegistryRepositoryEvents";

#[tokio::test]
async fn log_analytics_retention_timespan_and_summarize() {
    let emulator = LogAnalyticsEmulator::new("ws-1");
    emulator.set_expected_token(Some("t0ken"));
    emulator.set_retention(Duration::days(30));
    let now = Utc::now();
    let ls = "reg.azurecr.io";
    emulator.add(RepositoryEvent::pull(
        now - Duration::days(40),
        ls,
        "app",
        Some("v1"),
        Some("sha256:a"),
        "ci",
    ));
    emulator.add(RepositoryEvent::pull(
        now - Duration::days(10),
        ls,
        "app",
        Some("v1"),
        Some("sha256:a"),
        "ci",
    ));
    emulator.add(RepositoryEvent::pull(
        now - Duration::days(2),
        ls,
        "app",
        None,
        Some("sha256:a"),
        "scanner",
    ));
    emulator.add(
        RepositoryEvent::pull(
            now - Duration::days(1),
            ls,
            "app",
            Some("v2"),
            Some("sha256:b"),
            "ci",
        )
        .with_operation("Push"),
    );
    let server = emulator.start().await.unwrap();
    let url = format!("{}/v1/workspaces/ws-1/query", server.url);

    let (status, _, body) = post(&url, None, json!({"query": EVENTS})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("AuthenticationFailed"))
    );

    let query = format!(
        "{EVENTS} | where OperationName == \"Pull\" | where Identity !in~ (\"SCANNER\") | summarize LastPull = max(TimeGenerated) by Repository, Digest"
    );
    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"query": query, "timespan": "P90D"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let table = &body["tables"][0];
    assert_eq!(table["name"], "PrimaryResult");
    assert_eq!(
        table["columns"][2],
        json!({"name": "LastPull", "type": "datetime"})
    );
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    let last = chrono::DateTime::parse_from_rfc3339(rows[0][2].as_str().unwrap()).unwrap();
    assert!(
        (last.with_timezone(&Utc) - (now - Duration::days(10)))
            .num_seconds()
            .abs()
            <= 1
    );

    // A timespan of 5 days sees only the scanner's pull and the push.
    let oldest = format!(
        "{EVENTS} | where LoginServer =~ \"REG.azurecr.io\" | summarize Oldest = min(TimeGenerated)"
    );
    let (_, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"query": oldest, "timespan": "P5D"}),
    )
    .await;
    let first =
        chrono::DateTime::parse_from_rfc3339(body["tables"][0]["rows"][0][0].as_str().unwrap())
            .unwrap();
    assert!(
        (first.with_timezone(&Utc) - (now - Duration::days(2)))
            .num_seconds()
            .abs()
            <= 1
    );
    let (_, _, body) = post(&url, Some("t0ken"), json!({"query": format!("{EVENTS} | where Tag == 'none' | summarize Oldest = min(TimeGenerated)")})).await;
    assert_eq!(body["tables"][0]["rows"], json!([[null]]));

    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"query": "AzureActivity | take 1"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BadArgumentError"))
    );
    let (status, _, _) = post(
        &url,
        Some("t0ken"),
        json!({"query": EVENTS, "timespan": "90 days"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, body) = post(
        &format!("{}/v1/workspaces/other/query", server.url),
        Some("t0ken"),
        json!({"query": EVENTS}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("WorkspaceNotFoundError"))
    );

    emulator.inject(LogsFault::Partial {
        message: "shard unavailable".into(),
    });
    let (status, _, body) = post(&url, Some("t0ken"), json!({"query": EVENTS})).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], "PartialError");
    assert_eq!(body["error"]["details"][0]["message"], "shard unavailable");
    assert!(body["tables"][0]["rows"].as_array().is_some());
    emulator.clear_faults();
    emulator.inject(LogsFault::Fail { status: 500 });
    let (status, ..) = post(&url, Some("t0ken"), json!({"query": EVENTS})).await;
    assert_eq!(status, 500);
    assert_eq!(emulator.requests().last().unwrap().status, 500);
}

#[tokio::test]
async fn resource_graph_leaves_out_unreadable_subscriptions_and_answers_403_only_for_none() {
    let emulator = graph();
    emulator.add_subscription("empty");
    emulator.set_unreadable(&["s2"]);
    let server = emulator.start().await.unwrap();
    let url = rg_url(&server.url);
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect()
    };

    // s2 is unreadable: left out without an error, as the service does.
    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"subscriptions": ["s1", "s2"], "query": QUERY}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalRecords"], 2, "{body}");
    assert!(
        ids(&body)
            .iter()
            .all(|id| id.starts_with("/subscriptions/s1/"))
    );

    // ResourceContainers tells which of the asked subscriptions are readable.
    let containers = "ResourceContainers | where type == 'microsoft.resources/subscriptions' | project subscriptionId | order by subscriptionId asc";
    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"subscriptions": ["s1", "s2", "empty", "missing"], "query": containers}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([{"subscriptionId": "empty"}, {"subscriptionId": "s1"}])
    );
    // Resource groups are containers too, of another type.
    let (_, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"subscriptions": ["s1"], "query": "ResourceContainers | project id, type"}),
    )
    .await;
    assert!(
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["type"] == "microsoft.resources/subscriptions/resourcegroups"),
        "{body}"
    );

    // None readable: 403 AccessDenied.
    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"subscriptions": ["s2", "missing"], "query": QUERY}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AccessDenied");
    // A management group whose subscriptions are all unreadable: 403 as well.
    emulator.set_unreadable(&["s2", "s3"]);
    let (status, ..) = post(
        &url,
        Some("t0ken"),
        json!({"managementGroups": ["mg"], "query": QUERY}),
    )
    .await;
    assert_eq!(status, 403);

    // At most 1,000 subscriptions a request.
    let many: Vec<String> = (0..1001).map(|i| format!("s{i}")).collect();
    let (status, _, body) = post(
        &url,
        Some("t0ken"),
        json!({"subscriptions": many, "query": QUERY}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1000")
    );

    // The tenant subscription limit, as a header on a 200.
    emulator.inject(GraphFault::SubscriptionLimitHit);
    let (status, headers, _) = post(
        &url,
        Some("t0ken"),
        json!({"subscriptions": ["s1"], "query": QUERY}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-ms-tenant-subscription-limit-hit"], "true");
}
