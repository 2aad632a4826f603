//! The ACR emulator exercised over real HTTP.

use std::time::{Duration, Instant};

use acr_emulator::{
    AuthMode, Emulator, Fault, ManifestSeed, RepoSeed, RunningEmulator, Seed, TagSeed, TimeSpec,
    TokenAuth, sha256_digest,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, Method, StatusCode, header};
use serde_json::Value;

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    fn error_code(&self) -> &str {
        self.json["errors"][0]["code"].as_str().unwrap_or_default()
    }
}

struct Harness {
    server: RunningEmulator,
    client: Client,
}

impl Harness {
    async fn new(seed: Seed) -> Harness {
        let emulator = Emulator::new(seed).expect("valid seed");
        Harness {
            server: emulator.start().await.expect("server starts"),
            client: Client::new(),
        }
    }

    fn emulator(&self) -> &Emulator {
        self.server.emulator()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.server.url));
        if let Some(value) = auth {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some((content_type, text)) = body {
            request = request
                .header(header::CONTENT_TYPE, content_type)
                .body(text);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None).await
    }

    async fn bearer(&self, method: Method, path: &str, token: &str) -> Reply {
        self.call(method, path, Some(&format!("Bearer {token}")), None)
            .await
    }

    async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let form = Some(("application/x-www-form-urlencoded", body));
        self.call(Method::POST, path, None, form).await
    }

    async fn patch(&self, path: &str, json: &str) -> Reply {
        self.call(
            Method::PATCH,
            path,
            None,
            Some(("application/json", json.to_string())),
        )
        .await
    }

    async fn refresh_token(&self) -> String {
        let host = self.server.host();
        let reply = self
            .post_form(
                "/oauth2/exchange",
                &[
                    ("grant_type", "access_token"),
                    ("service", &host),
                    ("access_token", "entra"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        reply.json["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string()
    }

    async fn access_token(&self, refresh: &str, scope: &str) -> Reply {
        let host = self.server.host();
        self.post_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("service", &host),
                ("scope", scope),
                ("refresh_token", refresh),
            ],
        )
        .await
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

fn tag_names(reply: &Reply) -> Vec<String> {
    reply.json["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `app`: v1 (4d), v2 (3d), v3 (2d), v4 (1d), latest (15m); `team/app`: one image; `tools`: one image.
fn basic_seed() -> Seed {
    Seed::new()
        .repo(
            RepoSeed::new("app")
                .manifest(
                    ManifestSeed::docker("a")
                        .age("5d")
                        .tag(TagSeed::new("v1").age("4d")),
                )
                .manifest(
                    ManifestSeed::docker("b")
                        .age("5d")
                        .tag(TagSeed::new("v2").age("3d")),
                )
                .manifest(
                    ManifestSeed::docker("c")
                        .age("5d")
                        .tag(TagSeed::new("v3").age("2d")),
                )
                .manifest(
                    ManifestSeed::image("d")
                        .age("5d")
                        .tag(TagSeed::new("v4").age("1d"))
                        .tag(TagSeed::new("latest").age("15m")),
                )
                .manifest(ManifestSeed::image("dangling").age("9d")),
        )
        .repo(RepoSeed::new("team/app").manifest(ManifestSeed::image("x").tag("v1")))
        .repo(RepoSeed::new("tools").manifest(ManifestSeed::image("y").tag("v1")))
}

#[tokio::test]
async fn token_flow_grants_requested_scopes() {
    let h = Harness::new(basic_seed().with_auth(AuthMode::token())).await;
    let ping = h.get("/v2/").await;
    assert_eq!(ping.status, StatusCode::UNAUTHORIZED);
    let expected = format!(
        "Bearer realm=\"{}/oauth2/token\",service=\"{}\"",
        h.server.url,
        h.server.host()
    );
    assert_eq!(ping.header("www-authenticate"), expected);

    let refresh = h.refresh_token().await;
    assert!(claims(&refresh)["exp"].as_i64().is_some());
    assert!(claims(&refresh).get("aad_identity").is_none());
    let reply = h
        .access_token(&refresh, "repository:app:pull registry:catalog:*")
        .await;
    let access = reply.json["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let granted = &claims(&access)["access"];
    assert_eq!(granted[0]["name"], "app");
    assert_eq!(granted[0]["actions"][0], "pull");

    assert_eq!(
        h.bearer(Method::GET, "/v2/", &access).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.bearer(Method::GET, "/acr/v1/app/_tags", &access)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.bearer(Method::GET, "/v2/_catalog", &access).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.get("/acr/v1/app/_tags").await.status,
        StatusCode::UNAUTHORIZED
    );

    let denied = h
        .bearer(Method::DELETE, "/acr/v1/app/_tags/v1", &access)
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.error_code(), "UNAUTHORIZED");
    assert!(
        denied
            .header("www-authenticate")
            .ends_with(",scope=\"repository:app:delete\"")
    );
    let other = h.bearer(Method::GET, "/acr/v1/tools/_tags", &access).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert!(h.emulator().snapshot().has_tag("app", "v1"));

    // Non-ABAC: repository:*:* grants everything.
    let reply = h.access_token(&refresh, "repository:*:*").await;
    let all = reply.json["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let deleted = h.bearer(Method::DELETE, "/acr/v1/app/_tags/v1", &all).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn expired_and_malformed_tokens_are_refused() {
    let auth = AuthMode::Token(TokenAuth {
        access_token_ttl_seconds: 0,
        ..TokenAuth::default()
    });
    let h = Harness::new(basic_seed().with_auth(auth)).await;
    let refresh = h.refresh_token().await;
    let reply = h.access_token(&refresh, "repository:app:pull").await;
    let access = reply.json["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let expired = h.bearer(Method::GET, "/acr/v1/app/_tags", &access).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(
        expired
            .header("www-authenticate")
            .contains("scope=\"repository:app:pull\"")
    );

    let bad = h.access_token("not.a.jwt", "repository:app:pull").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.error_code(), "UNAUTHORIZED");
    // An access token is not a refresh token.
    assert_eq!(
        h.access_token(&access, "repository:app:pull").await.status,
        StatusCode::UNAUTHORIZED
    );

    h.emulator().set_auth(AuthMode::Token(TokenAuth {
        refresh_token_ttl_seconds: 0,
        ..TokenAuth::default()
    }));
    let stale = h.refresh_token().await;
    assert_eq!(
        h.access_token(&stale, "repository:app:pull").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn abac_ignores_wildcard_and_denies_listed_repositories() {
    let auth = AuthMode::Token(TokenAuth {
        abac: true,
        deny_repositories: vec!["tools".into()],
        ..TokenAuth::default()
    });
    let h = Harness::new(basic_seed().with_auth(auth)).await;
    let refresh = h.refresh_token().await;
    assert!(claims(&refresh).get("aad_identity").is_some());

    let wildcard = h
        .access_token(&refresh, "registry:catalog:* repository:*:*")
        .await;
    let token = wildcard.json["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(claims(&token)["access"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        h.bearer(Method::GET, "/v2/_catalog", &token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.bearer(Method::GET, "/acr/v1/app/_tags", &token)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let scope = "repository:app:pull,delete,metadata_read,metadata_write repository:tools:pull,delete,metadata_read,metadata_write";
    let reply = h.access_token(&refresh, scope).await;
    let token = reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        h.bearer(Method::GET, "/acr/v1/app/_tags", &token)
            .await
            .status,
        StatusCode::OK
    );
    let denied = h.bearer(Method::GET, "/acr/v1/tools/_tags", &token).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(
        denied
            .header("www-authenticate")
            .contains("repository:tools:pull")
    );
}

#[tokio::test]
async fn basic_auth_is_checked_on_every_call() {
    let h = Harness::new(basic_seed().with_auth(AuthMode::basic("admin", "s3cret"))).await;
    let none = h.get("/v2/_catalog").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.header("www-authenticate").starts_with("Basic realm="));
    let basic = |user: &str, pass: &str| {
        let raw = format!("{user}:{pass}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let wrong = h
        .call(
            Method::GET,
            "/v2/_catalog",
            Some(&basic("admin", "nope")),
            None,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let good = basic("admin", "s3cret");
    assert_eq!(
        h.call(Method::GET, "/v2/_catalog", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.call(Method::GET, "/acr/v1/app/_tags", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );
    let deleted = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", Some(&good), None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn catalog_pages_with_link_header() {
    let h = Harness::new(basic_seed()).await;
    let first = h.get("/v2/_catalog?n=2").await;
    assert_eq!(
        first.json["repositories"],
        serde_json::json!(["app", "team/app"])
    );
    assert_eq!(
        first.header("link"),
        "</v2/_catalog?last=team%2Fapp&n=2>; rel=\"next\""
    );
    let second = h.get("/v2/_catalog?last=team%2Fapp&n=2").await;
    assert_eq!(second.json["repositories"], serde_json::json!(["tools"]));
    assert!(second.header("link").is_empty());
    let acr = h.get("/acr/v1/_catalog?n=1").await;
    assert_eq!(acr.json["repositories"], serde_json::json!(["app"]));
    assert_eq!(
        acr.header("link"),
        "</acr/v1/_catalog?last=app&n=1>; rel=\"next\""
    );
    let empty = h.get("/v2/_catalog?last=tools&n=2").await;
    assert_eq!(empty.json["repositories"], serde_json::json!([]));
}

#[tokio::test]
async fn tags_page_in_time_order_with_link_and_last() {
    let h = Harness::new(basic_seed()).await;
    let first = h.get("/acr/v1/app/_tags?n=2&orderby=timedesc").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json["imageName"], "app");
    assert_eq!(first.json["registry"], h.server.host());
    assert_eq!(tag_names(&first), vec!["latest", "v4"]);
    let link = first.header("link");
    assert_eq!(
        link,
        "</acr/v1/app/_tags?last=v4&n=2&orderby=timedesc>; rel=\"next\""
    );
    let tag = &first.json["tags"][0];
    assert_eq!(tag["signed"], false);
    assert_eq!(tag["changeableAttributes"]["deleteEnabled"], true);
    assert_eq!(tag["changeableAttributes"]["listEnabled"], true);
    assert_eq!(tag["lastUpdateTime"].as_str().map(str::len), Some(28));

    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default();
    let second = h.get(next).await;
    assert_eq!(tag_names(&second), vec!["v3", "v2"]);
    let third = h
        .get("/acr/v1/app/_tags?n=2&orderby=timedesc&last=v2")
        .await;
    assert_eq!(tag_names(&third), vec!["v1"]);
    assert!(third.header("link").is_empty());

    let asc = h.get("/acr/v1/app/_tags?orderby=timeasc").await;
    assert_eq!(tag_names(&asc), vec!["v1", "v2", "v3", "v4", "latest"]);
    let by_name = h.get("/acr/v1/app/_tags").await;
    assert_eq!(tag_names(&by_name), vec!["latest", "v1", "v2", "v3", "v4"]);
    let digest = h
        .emulator()
        .snapshot()
        .manifest_by_alias("app", "d")
        .map(|m| m.digest.clone());
    let filtered = h
        .get(&format!(
            "/acr/v1/app/_tags?digest={}",
            digest.unwrap_or_default()
        ))
        .await;
    assert_eq!(tag_names(&filtered), vec!["latest", "v4"]);

    let missing = h.get("/acr/v1/nope/_tags").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "NAME_UNKNOWN");
}

#[tokio::test]
async fn cursor_naming_a_deleted_tag_gives_an_empty_page() {
    let h = Harness::new(basic_seed()).await;
    let first = h.get("/acr/v1/app/_tags?n=2&orderby=timedesc").await;
    assert_eq!(tag_names(&first), vec!["latest", "v4"]);
    for tag in ["latest", "v4"] {
        let reply = h
            .call(
                Method::DELETE,
                &format!("/acr/v1/app/_tags/{tag}"),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    let after = h
        .get("/acr/v1/app/_tags?n=2&orderby=timedesc&last=v4")
        .await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(tag_names(&after).is_empty());
    assert!(after.header("link").is_empty());
}

#[tokio::test]
async fn manifests_listing_omits_tags_when_untagged() {
    let seed = basic_seed();
    let h = Harness::new(seed.clone()).await;
    let reply = h.get("/acr/v1/app/_manifests?n=3").await;
    let items = reply.json["manifests"]
        .as_array()
        .expect("manifests")
        .clone();
    assert_eq!(items.len(), 3);
    let digests: Vec<&str> = items.iter().filter_map(|m| m["digest"].as_str()).collect();
    let mut sorted = digests.clone();
    sorted.sort_unstable();
    assert_eq!(digests, sorted);
    let link = reply.header("link");
    assert_eq!(
        link,
        format!(
            "</acr/v1/app/_manifests?last={}&n=3>; rel=\"next\"",
            digests[2].replace(':', "%3A")
        )
    );

    let all = h.get("/acr/v1/app/_manifests").await;
    let dangling = seed.digest("app", "dangling");
    let entry = all.json["manifests"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["digest"] == dangling.as_str()))
        .cloned()
        .expect("dangling listed");
    assert!(entry.get("tags").is_none());
    assert_eq!(entry["mediaType"], acr_emulator::OCI_MANIFEST);
    assert_eq!(entry["architecture"], "amd64");
    assert_eq!(entry["changeableAttributes"]["writeEnabled"], true);
    let tagged = h
        .get(&format!(
            "/acr/v1/app/_manifests/{}",
            seed.digest("app", "d")
        ))
        .await;
    assert_eq!(
        tagged.json["manifest"]["tags"],
        serde_json::json!(["latest", "v4"])
    );
    assert_eq!(tagged.json["imageName"], "app");

    let desc = h.get("/acr/v1/app/_manifests?orderby=timedesc&n=1").await;
    assert_ne!(desc.json["manifests"][0]["digest"], dangling.as_str());
    let asc = h.get("/acr/v1/app/_manifests?orderby=timeasc&n=1").await;
    assert_eq!(asc.json["manifests"][0]["digest"], dangling.as_str());
}

#[tokio::test]
async fn patch_locks_and_delete_tag_statuses() {
    let h = Harness::new(basic_seed()).await;
    let locked = h
        .patch("/acr/v1/app/_tags/v1", r#"{"deleteEnabled":false}"#)
        .await;
    assert_eq!(locked.status, StatusCode::OK);
    assert_eq!(
        locked.json["tag"]["changeableAttributes"]["deleteEnabled"],
        false
    );
    assert_eq!(
        locked.json["tag"]["changeableAttributes"]["writeEnabled"],
        true
    );
    let refused = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", None, None)
        .await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);

    h.patch(
        "/acr/v1/app/_tags/v1",
        r#"{"deleteEnabled":true,"writeEnabled":false}"#,
    )
    .await;
    let refused = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", None, None)
        .await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    let unlocked = h
        .patch(
            "/acr/v1/app/_tags/v1",
            r#"{"deleteEnabled":true,"writeEnabled":true}"#,
        )
        .await;
    assert_eq!(
        unlocked.json["tag"]["changeableAttributes"]["writeEnabled"],
        true
    );

    let deleted = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", None, None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let again = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", None, None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let snap = h.emulator().snapshot();
    assert!(!snap.has_tag("app", "v1"));
    let a = snap
        .manifest_by_alias("app", "a")
        .expect("untag keeps the manifest");
    assert!(a.tags.is_empty());

    let digest = a.digest.clone();
    let patched = h
        .patch(
            &format!("/acr/v1/app/_manifests/{digest}"),
            r#"{"writeEnabled":false}"#,
        )
        .await;
    assert_eq!(
        patched.json["manifest"]["changeableAttributes"]["writeEnabled"],
        false
    );
    let path = format!("/v2/app/manifests/{digest}");
    assert_eq!(
        h.call(Method::DELETE, &path, None, None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

fn referrer_seed() -> Seed {
    Seed::new().repo(
        RepoSeed::new("team/app")
            .manifest(ManifestSeed::image("amd64").age("10d"))
            .manifest(
                ManifestSeed::image("arm64")
                    .age("10d")
                    .platform("linux", "arm64"),
            )
            .manifest(
                ManifestSeed::index("multi")
                    .age("10d")
                    .child("amd64")
                    .child("arm64")
                    .tags(&["v1", "v1.0"]),
            )
            .manifest(
                ManifestSeed::artifact("sig", "application/vnd.cncf.notary.signature")
                    .subject("multi"),
            )
            .manifest(
                ManifestSeed::artifact("sig-of-sig", "application/example")
                    .subject("sig")
                    .tag("meta"),
            )
            .manifest(ManifestSeed::artifact("sbom", "application/spdx+json").subject("amd64")),
    )
}

#[tokio::test]
async fn manifest_delete_removes_tags_and_referrers_but_not_children() {
    let seed = referrer_seed();
    let h = Harness::new(seed.clone()).await;
    let multi = seed.digest("team/app", "multi");

    let referrers = h.get(&format!("/v2/team/app/referrers/{multi}")).await;
    assert_eq!(
        referrers.json["manifests"][0]["digest"],
        seed.digest("team/app", "sig").as_str()
    );
    assert_eq!(
        referrers.json["manifests"][0]["artifactType"],
        "application/vnd.cncf.notary.signature"
    );
    let filtered = h
        .get(&format!(
            "/v2/team/app/referrers/{multi}?artifactType=application/other"
        ))
        .await;
    assert_eq!(filtered.json["manifests"], serde_json::json!([]));

    let by_tag = h
        .call(Method::DELETE, "/v2/team/app/manifests/v1", None, None)
        .await;
    assert_eq!(by_tag.status, StatusCode::BAD_REQUEST);
    assert_eq!(by_tag.error_code(), "DIGEST_INVALID");

    let deleted = h
        .call(
            Method::DELETE,
            &format!("/v2/team%2Fapp/manifests/{multi}"),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let snap = h.emulator().snapshot();
    assert!(
        snap.tag_names("team/app").is_empty(),
        "v1, v1.0 and meta are gone"
    );
    for alias in ["multi", "sig", "sig-of-sig"] {
        assert!(
            snap.manifest_by_alias("team/app", alias).is_none(),
            "{alias} deleted"
        );
    }
    for alias in ["amd64", "arm64", "sbom"] {
        assert!(
            snap.manifest_by_alias("team/app", alias).is_some(),
            "{alias} kept"
        );
    }
    let gone = h
        .call(
            Method::DELETE,
            &format!("/v2/team/app/manifests/{multi}"),
            None,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "MANIFEST_UNKNOWN");

    for alias in ["amd64", "arm64"] {
        let path = format!("/v2/team/app/manifests/{}", seed.digest("team/app", alias));
        assert_eq!(
            h.call(Method::DELETE, &path, None, None).await.status,
            StatusCode::ACCEPTED
        );
    }
    assert!(
        h.emulator().snapshot().repository_names().is_empty(),
        "sbom went with amd64"
    );
    assert_eq!(
        h.get("/v2/_catalog").await.json["repositories"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn manifests_are_served_with_digest_of_their_bytes() {
    let seed = referrer_seed();
    let h = Harness::new(seed.clone()).await;
    let response = h
        .client
        .get(format!("{}/v2/team/app/manifests/v1", h.server.url))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let digest = sha256_digest(&bytes);
    assert_eq!(digest, seed.digest("team/app", "multi"));
    assert_eq!(headers["docker-content-digest"], digest.as_str());
    assert_eq!(headers["content-type"], acr_emulator::OCI_INDEX);
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(body["manifests"][1]["platform"]["architecture"], "arm64");

    let head = h
        .call(
            Method::HEAD,
            &format!("/v2/team/app/manifests/{digest}"),
            None,
            None,
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("docker-content-digest"), digest);
    let missing = h.get("/v2/team/app/manifests/nope").await;
    assert_eq!(missing.error_code(), "MANIFEST_UNKNOWN");
    let tags = h.get("/v2/team%2Fapp/tags/list").await;
    assert_eq!(
        tags.json,
        serde_json::json!({"name": "team/app", "tags": ["meta", "v1", "v1.0"]})
    );
}

#[tokio::test]
async fn raw_and_encoded_repository_names_reach_the_same_repository() {
    let h = Harness::new(basic_seed()).await;
    let raw = h.get("/acr/v1/team/app/_tags").await;
    let encoded = h.get("/acr/v1/team%2Fapp/_tags").await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.json, encoded.json);
    assert_eq!(raw.json["imageName"], "team/app");
    let deleted = h
        .call(Method::DELETE, "/acr/v1/team%2Fapp/_tags/v1", None, None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert!(!h.emulator().snapshot().has_tag("team/app", "v1"));
}

#[tokio::test]
async fn throttle_fault_fires_twice_then_requests_succeed() {
    let h = Harness::new(basic_seed()).await;
    h.emulator().inject(
        Fault::throttle(7)
            .method("GET")
            .path_contains("/_tags")
            .query_contains("last=v4")
            .times(2),
    );
    assert_eq!(
        h.get("/acr/v1/app/_tags?n=2&orderby=timedesc").await.status,
        StatusCode::OK
    );
    for _ in 0..2 {
        let reply = h
            .get("/acr/v1/app/_tags?last=v4&n=2&orderby=timedesc")
            .await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.header("retry-after"), "7");
        assert_eq!(reply.error_code(), "TOOMANYREQUESTS");
    }
    let ok = h
        .get("/acr/v1/app/_tags?last=v4&n=2&orderby=timedesc")
        .await;
    assert_eq!(tag_names(&ok), vec!["v3", "v2"]);

    let recorded = h.emulator().requests();
    let statuses: Vec<u16> = recorded.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 429, 429, 200]);
    assert_eq!(recorded[1].method, "GET");
    assert_eq!(recorded[1].path, "/acr/v1/app/_tags");
    assert_eq!(recorded[1].query, "last=v4&n=2&orderby=timedesc");

    h.emulator().inject(Fault::status(503).method("DELETE"));
    let failed = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", None, None)
        .await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        h.emulator().snapshot().has_tag("app", "v1"),
        "a faulted request changes nothing"
    );
    h.emulator().clear_faults();
    h.emulator().clear_requests();
    let deleted = h
        .call(Method::DELETE, "/acr/v1/app/_tags/v1", None, None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(h.emulator().requests().len(), 1);
}

#[tokio::test]
async fn latency_is_added_globally_and_by_rule() {
    let h = Harness::new(basic_seed()).await;
    h.emulator().set_latency(Duration::from_millis(120));
    let started = Instant::now();
    h.get("/v2/").await;
    assert!(started.elapsed() >= Duration::from_millis(120));
    h.emulator().set_latency(Duration::ZERO);
    h.emulator()
        .inject(Fault::delay(Duration::from_millis(150)).path_prefix("/v2/_catalog"));
    let started = Instant::now();
    assert_eq!(h.get("/v2/_catalog").await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    h.get("/v2/").await;
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn json_seed_with_verbatim_and_null_times() {
    let json = r#"{
      "repositories": [{ "name": "r", "manifests": [
        { "alias": "old", "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "age": "40d", "tags": [{ "name": "bad", "lastUpdateTime": "date" }, "v1"] },
        { "alias": "odd", "mediaType": null, "lastUpdateTime": null,
          "createdTime": "2018-09-06T06:17:20.9983915Z" }
      ]}]
    }"#;
    let emulator = Emulator::from_json(json).expect("valid");
    let server = emulator.start().await.expect("starts");
    let client = Client::new();
    let url = format!("{}/acr/v1/r/_tags/bad", server.url);
    let tag: Value = client
        .get(url)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(tag["tag"]["lastUpdateTime"], "date");
    let url = format!("{}/acr/v1/r/_manifests", server.url);
    let list: Value = client
        .get(url)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let odd = list["manifests"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m.get("mediaType").is_none()))
        .cloned()
        .expect("untyped manifest listed without mediaType");
    assert_eq!(odd["lastUpdateTime"], Value::Null);
    assert_eq!(odd["createdTime"], "2018-09-06T06:17:20.9983915Z");
    server.shutdown().await;
}

#[test]
fn invalid_seeds_name_the_repository_and_manifest() {
    let child = r#"{"repositories":[{"name":"r","manifests":[
        {"alias":"i","mediaType":"application/vnd.oci.image.index.v1+json","children":["ghost"]}]}]}"#;
    let e = format!("{:#}", Emulator::from_json(child).unwrap_err());
    assert!(
        e.contains("\"r\"") && e.contains("\"i\"") && e.contains("ghost"),
        "{e}"
    );
    let media =
        r#"{"repositories":[{"name":"r","manifests":[{"alias":"m","mediaType":"image/png"}]}]}"#;
    let e = format!("{:#}", Emulator::from_json(media).unwrap_err());
    assert!(e.contains("\"m\"") && e.contains("image/png"), "{e}");
    let dup = Seed::new().repo(
        RepoSeed::new("r")
            .manifest(ManifestSeed::image("a").tag("x"))
            .manifest(ManifestSeed::image("b").tag("x")),
    );
    let e = format!("{:#}", Emulator::new(dup).unwrap_err());
    assert!(e.contains("\"r\"") && e.contains("\"x\""), "{e}");
    let unknown_field = r#"{"repositories":[{"name":"r","manifests":[{"alias":"m","tagz":[]}]}]}"#;
    assert!(Emulator::from_json(unknown_field).is_err());
    let seed = Seed::new()
        .repo(RepoSeed::new("r").manifest(ManifestSeed::image("a").updated(TimeSpec::Null)));
    let round_trip = Seed::from_json(&seed.to_json()).expect("round trip");
    assert_eq!(round_trip, seed);
}

#[tokio::test]
async fn large_repository_lists_in_pages_quickly() {
    let mut repo = RepoSeed::new("big");
    for i in 0..20_000 {
        let age = format!("{}m", 20_000 - i);
        repo.push(
            ManifestSeed::docker(&format!("m{i}"))
                .age(&age)
                .tag(format!("t{i}").as_str()),
        );
    }
    let h = Harness::new(Seed::new().repo(repo)).await;
    let started = Instant::now();
    let mut path = "/acr/v1/big/_tags?n=100&orderby=timedesc".to_string();
    let mut seen = 0;
    loop {
        let reply = h.get(&path).await;
        seen += tag_names(&reply).len();
        let link = reply.header("link");
        let Some(next) = link.strip_prefix('<').and_then(|l| l.split('>').next()) else {
            break;
        };
        path = next.to_string();
    }
    assert_eq!(seen, 20_000);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn recording_can_be_turned_off() {
    let h = Harness::new(basic_seed()).await;
    h.get("/v2/_catalog").await;
    h.emulator().set_recording(false);
    assert_eq!(h.get("/v2/app/tags/list").await.status, StatusCode::OK);
    h.emulator().set_recording(true);
    h.get("/v2/").await;
    let paths: Vec<String> = h
        .emulator()
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, vec!["/v2/_catalog", "/v2/"]);
}
