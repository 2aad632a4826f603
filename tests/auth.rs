//! Signing in: managed identity through the real azure_identity crate, the ACR token
//! exchange, token renewal, ABAC batches and permissions, Basic and refresh-token flags.

use crate::support::identity::{ENTRA_TOKEN, IdentityEndpoint};
use crate::support::purge::{Registry, tagged};
use acr_emulator::{AuthMode, RepoSeed, Seed, TokenAuth};

fn repos(seed: Seed, count: usize) -> Seed {
    (1..=count).fold(seed, |seed, i| {
        seed.repo(RepoSeed::new(&format!("r{i}")).manifest(tagged("m", "old", "2d")))
    })
}

fn token_auth(options: TokenAuth) -> AuthMode {
    AuthMode::Token(TokenAuth {
        required_access_token: Some(ENTRA_TOKEN.to_string()),
        ..options
    })
}

async fn purge_with_identity(
    registry: &Registry,
    identity: &IdentityEndpoint,
    extra: &[(&str, &str)],
) -> crate::support::purge::Run {
    purge_with_identity_args(registry, identity, extra, &[]).await
}

async fn purge_with_identity_args(
    registry: &Registry,
    identity: &IdentityEndpoint,
    extra: &[(&str, &str)],
    args: &[&str],
) -> crate::support::purge::Run {
    let env = identity.env();
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(extra);
    let mut all = vec!["--filter", ".*:.*", "--ago", "1d"];
    all.extend_from_slice(args);
    registry.purge_with_env(&all, &pairs).await
}

#[tokio::test]
async fn managed_identity_token_is_exchanged_for_acr_tokens() {
    let identity = IdentityEndpoint::start().await;
    let registry = Registry::start(repos(
        Seed::new().with_auth(token_auth(TokenAuth::default())),
        2,
    ))
    .await;
    let run = purge_with_identity(&registry, &identity, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.tags("r1").is_empty() && registry.tags("r2").is_empty());
    let asked = identity.requests();
    assert_eq!(asked.len(), 1, "the Entra token is cached: {asked:?}");
    assert_eq!(asked[0]["resource"], "https://containerregistry.azure.net");
    assert!(!asked[0].contains_key("client_id"));
    assert_eq!(registry.count("/oauth2/exchange"), 1);
    assert_eq!(
        registry.count("/oauth2/token"),
        1,
        "one token covers every repository"
    );
}

#[tokio::test]
async fn user_assigned_identity_sends_its_client_id() {
    let identity = IdentityEndpoint::start().await;
    let registry = Registry::start(repos(
        Seed::new().with_auth(token_auth(TokenAuth::default())),
        1,
    ))
    .await;
    let run = purge_with_identity(
        &registry,
        &identity,
        &[("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        identity.requests()[0]["client_id"],
        "11111111-2222-3333-4444-555555555555"
    );
}

#[tokio::test]
async fn abac_registries_get_per_repository_scopes_in_batches() {
    let identity = IdentityEndpoint::start().await;
    let abac = TokenAuth {
        abac: true,
        ..TokenAuth::default()
    };
    let registry = Registry::start(repos(Seed::new().with_auth(token_auth(abac)), 5)).await;
    let run = purge_with_identity(&registry, &identity, &[("ABAC_BATCH_SIZE", "2")]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for i in 1..=5 {
        assert!(registry.tags(&format!("r{i}")).is_empty(), "r{i}");
    }
    // One token for the catalog, then one per batch of two repositories.
    assert_eq!(registry.count("/oauth2/token"), 4);
}

#[tokio::test]
async fn abac_permission_error_skips_that_repository_and_purges_the_others() {
    let identity = IdentityEndpoint::start().await;
    let abac = TokenAuth {
        abac: true,
        deny_repositories: vec!["r3".to_string()],
        ..TokenAuth::default()
    };
    let registry = Registry::start(repos(Seed::new().with_auth(token_auth(abac)), 5)).await;
    let run = purge_with_identity(&registry, &identity, &[]).await;
    assert_eq!(run.code, 1, "partial: {}", run.stderr);
    assert!(run.stderr.contains("partial purge: r3: "), "{}", run.stderr);
    assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
    assert_eq!(registry.tags("r3").len(), 1, "r3 untouched");
    for i in [1, 2, 4, 5] {
        assert!(registry.tags(&format!("r{i}")).is_empty(), "r{i} purged");
    }
    assert!(
        run.stdout.contains("Number of deleted tags: 4"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn expired_access_and_refresh_tokens_are_renewed_mid_run() {
    let identity = IdentityEndpoint::start().await;
    // Token times are whole seconds: a 1 s token fetched late in a second may expire before
    // a 250 ms request arrives, twice in a row on a loaded machine. 2 s is short enough to
    // expire many times during the run, and always outlives one request.
    let short = TokenAuth {
        access_token_ttl_seconds: 2,
        refresh_token_ttl_seconds: 3,
        ..TokenAuth::default()
    };
    let registry = Registry::start(repos(Seed::new().with_auth(token_auth(short)), 3)).await;
    registry
        .emulator()
        .set_latency(std::time::Duration::from_millis(250));
    // One repository at a time, so that the run outlives its tokens.
    let run = purge_with_identity_args(
        &registry,
        &identity,
        &[("ABAC_BATCH_SIZE", "1")],
        &["--concurrency", "1"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for i in 1..=3 {
        assert!(registry.tags(&format!("r{i}")).is_empty(), "r{i}");
    }
    assert!(registry.count("/oauth2/token") > 1, "access tokens renewed");
    assert!(
        registry.count("/oauth2/exchange") > 1,
        "refresh token exchanged again"
    );
}

#[tokio::test]
async fn basic_credentials_and_refresh_tokens_from_flags() {
    let registry = Registry::start(repos(
        Seed::new().with_auth(AuthMode::basic("admin", "s3cret")),
        1,
    ))
    .await;
    let run = registry
        .purge(&["-u", "admin", "-p", "wrong", "-f", ".*:.*", "--ago", "1d"])
        .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
    let run = registry.purge(&["-f", ".*:.*", "--ago", "1d"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("-u/-p"), "{}", run.stderr);
    assert_eq!(registry.tags("r1").len(), 1);
    let run = registry
        .purge(&["-u", "admin", "-p", "s3cret", "-f", ".*:.*", "--ago", "1d"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.tags("r1").is_empty());

    // A refresh token as the password, with the zero GUID as the user.
    let registry = Registry::start(repos(
        Seed::new().with_auth(token_auth(TokenAuth::default())),
        1,
    ))
    .await;
    let refresh: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/oauth2/exchange", registry.running.url))
        .form(&[
            ("grant_type", "access_token"),
            ("service", &registry.running.host()),
            ("access_token", ENTRA_TOKEN),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = refresh["refresh_token"].as_str().unwrap();
    let run = registry
        .purge(&[
            "-u",
            "00000000-0000-0000-0000-000000000000",
            "-p",
            refresh,
            "-f",
            ".*:.*",
            "--ago",
            "1d",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.tags("r1").is_empty());
    assert_eq!(
        registry.count("/oauth2/exchange"),
        1,
        "only the test's own exchange"
    );
}

#[tokio::test]
async fn a_permission_error_while_deleting_skips_that_repository_and_purges_the_others() {
    let registry = Registry::start(repos(Seed::new(), 5)).await;
    registry.emulator().inject(
        acr_emulator::Fault::status(403)
            .method("DELETE")
            .path_prefix("/acr/v1/r3/"),
    );
    let run = registry.purge(&["-f", ".*:.*", "--ago", "1d"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("partial purge: r3: insufficient permissions"),
        "{}",
        run.stderr
    );
    assert_eq!(registry.tags("r3").len(), 1, "r3 untouched");
    for repo in ["r1", "r2", "r4", "r5"] {
        assert!(registry.tags(repo).is_empty(), "{repo} purged");
    }
    assert!(
        run.stdout.contains("Number of deleted tags: 4"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn denials_in_repository_after_repository_with_nothing_deleted_stop_the_run() {
    let registry = Registry::start(repos(Seed::new(), 8)).await;
    registry
        .emulator()
        .inject(acr_emulator::Fault::status(403).method("DELETE"));
    let run = registry
        .purge(&["-f", ".*:.*", "--ago", "1d", "--concurrency", "1"])
        .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("insufficient permissions to purge repository \"r5\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("remaining: [r6, r7, r8]"),
        "{}",
        run.stderr
    );
    // One refused DELETE in each of the five repositories tried, none after.
    assert_eq!(registry.mutations().len(), 5);
    for i in 1..=8 {
        assert_eq!(registry.tags(&format!("r{i}")).len(), 1, "r{i}");
    }
}
