//! `{"apply": digest}`: applies a plan a dry run saved in the run store, on this instance's
//! turn, only if it is the app's own policy's plan.
//!
//! Rules, in order (a refusal touches nothing and contacts no registry):
//! 1. identical requests coalesce and at most `MAX_APPLIES` are accepted at once (429
//!    beyond, see `applies`); a new apply is recorded `queued` in the run store;
//! 2. on the instance's turn the plan is read once: none under that digest is 404; a store
//!    that cannot be read is 503; a plan over `MAX_PLAN_BYTES`, not UTF-8, not a saved
//!    plan, not matching its digest, for another registry, older than a day or from the
//!    future is 422 with what is wrong;
//! 3. the plan's policy must be the app's own: its canonical policy document
//!    (`Policy::to_document`, every rule and `protect`, `protectInUse`, `keepDeployed`, `inUseGrace`, `inUseExcludeClusters`,
//!    `excludePullers`) equal to the app's, else 422 naming the fields that differ. A
//!    webhook never applies a plan made with another policy, wider or narrower;
//! 4. the run then plans again with the app's policy, gathering the in-use and pull
//!    evidence exactly as a purge does (failing closed), and deletes only what both plans
//!    delete unchanged (`crate::saved::reconcile`).

use super::lease::free_here;
use super::running::{accepted_later, finished, settle, supervise};
use super::{ApiError, AppState, RUN_DIED, invocation_id};
use crate::functions::applies::{self, ApplyEnd, MAX_PLAN_BYTES, Ticket};
use crate::functions::config::Config;
use crate::functions::queued;
use crate::functions::run_status::RunState;
use crate::functions::runner::Job;
use crate::saved::{DEFAULT_MAX_AGE, SavedPlan, SavedPlanError};
use crate::telemetry::{RunContext, Trigger};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Accepts an apply request and answers like a run: its report within the deadline, else
/// `202` with its run id; a refusal within the deadline is answered with its status.
pub(super) async fn apply(
    state: AppState,
    config: Arc<Config>,
    headers: &HeaderMap,
    digest: String,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let dry_run = dry_run || config.force_dry_run || config.policy.dry_run;
    if !dry_run {
        free_here(&state, &config, config.registry.host()).await?;
    }
    let context = RunContext {
        trigger: Trigger::Webhook,
        invocation_id: invocation_id(headers),
        function_name: Some("PurgeHttp".to_string()),
        registry: config.registry.host().to_string(),
        dry_run,
        parent: Some(opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(headers))
        })),
        run_id: None,
    };
    let accepted = state
        .applies
        .admit(&digest, dry_run, || state.runs.queue())
        .map_err(|full| ApiError::new(StatusCode::TOO_MANY_REQUESTS, full.to_string()))?;
    tracing::info!(
        run_id = accepted.id,
        plan = digest,
        dry_run,
        joined = accepted.joined,
        "webhook accepted: apply"
    );
    if let Some(ticket) = accepted.ticket {
        if let Ok(store) = state.durability.store(&config).await {
            queued::record(store, &accepted.id, config.registry.host(), dry_run).await;
        }
        let work = carry_out(
            state.clone(),
            config.clone(),
            digest,
            accepted.id.clone(),
            context,
            ticket,
        );
        tokio::spawn(work);
    }
    let deadline = config.http_deadline;
    let answer = match tokio::time::timeout(deadline, applies::ended(accepted.ending)).await {
        Ok(Some(end)) => match end.as_ref() {
            ApplyEnd::Refused { status, message } => {
                ApiError::new(*status, message.clone()).into_response()
            }
            ApplyEnd::Ran(outcome) => finished(outcome, &accepted.id),
        },
        Ok(None) => finished(&Arc::new(Err(RUN_DIED.to_string())), &accepted.id),
        Err(_) => accepted_later(&state, &accepted.id, accepted.joined),
    };
    Ok(answer)
}

/// Loads and checks the plan on the instance's turn, then applies it.
async fn carry_out(
    state: AppState,
    config: Arc<Config>,
    digest: String,
    id: String,
    mut context: RunContext,
    ticket: Ticket,
) {
    let turn = state.queue.turn(false).await;
    let refuse = |status: StatusCode, message: String| ApplyEnd::Refused { status, message };
    let loaded = if state.stop.is_stopped() {
        Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the instance shut down before the apply started; retry".to_string(),
        ))
    } else {
        load(&state, &config, &digest).await
    };
    let plan = match loaded {
        Ok(plan) => plan,
        Err(end) => {
            drop(turn);
            if let ApplyEnd::Refused { message, .. } = &end {
                tracing::warn!(run_id = id, plan = digest, "apply refused: {message}");
                state.runs.set(
                    &id,
                    RunState::Failed {
                        error: message.clone(),
                    },
                );
                if let Ok(store) = state.durability.store(&config).await {
                    queued::close(store, &id, message).await;
                }
            }
            ticket.end(end);
            return;
        }
    };
    state.runs.set(&id, RunState::Running);
    context.run_id = Some(id.clone());
    let job = Job::Apply {
        plan: Arc::new(plan),
        policy: Arc::new(config.policy.policy.clone()),
    };
    let result = supervise(&state, Some(turn), config.clone(), job, context).await;
    let outcome = settle(&state, &config, &id, result).await;
    ticket.end(ApplyEnd::Ran(outcome));
}

/// The plan saved under `digest`, read once and checked; or why it is refused.
async fn load(state: &AppState, config: &Config, digest: &str) -> Result<SavedPlan, ApplyEnd> {
    let refused = |status: StatusCode, why: String| ApplyEnd::Refused {
        status,
        message: why,
    };
    let unprocessable = |why: String| {
        refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("plan {digest} cannot be applied, nothing was deleted: {why}"),
        )
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        let error = ApiError::store_unavailable("apply refused", e);
        refused(error.status(), error.message().to_string())
    };
    let store = state
        .durability
        .store(config)
        .await
        .map_err(|e| unavailable(&e))?;
    let bytes = match store.saved_plan(digest).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(refused(
                StatusCode::NOT_FOUND,
                format!("no plan {digest} was saved in the run store"),
            ));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(unprocessable(format!(
            "it is {} bytes, more than the {} MiB the webhook applies (apply it with `handler apply`)",
            bytes.len(),
            MAX_PLAN_BYTES / (1024 * 1024)
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| unprocessable(format!("the stored plan is not UTF-8 text: {e}")))?;
    let plan = SavedPlan::parse(&text).map_err(|e| unprocessable(e.to_string()))?;
    drop(text);
    if plan.digest() != digest {
        let e = SavedPlanError::Tampered {
            found: digest.to_string(),
            computed: plan.digest().to_string(),
        };
        return Err(unprocessable(e.to_string()));
    }
    let policy = plan
        .check(config.registry.host(), DEFAULT_MAX_AGE, chrono::Utc::now())
        .map_err(|e| unprocessable(e.to_string()))?;
    let differ = differences(&policy.to_document(), &config.policy.policy.to_document());
    if !differ.is_empty() {
        return Err(unprocessable(format!(
            "it was made with another policy than this app's (PURGE_POLICY): {} differ; a webhook applies only plans of the app's own policy (make the plan with the webhook's {{\"dryRun\": true}}, or apply it with `handler apply`)",
            differ.join(", ")
        )));
    }
    Ok(plan)
}

/// The fields of two canonical policy documents that differ.
fn differences(plan: &serde_json::Value, app: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (plan, app) = (
        plan.as_object().unwrap_or(&empty),
        app.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = plan.keys().chain(app.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| plan.get(*k) != app.get(*k))
        .map(|k| k.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyDocument;

    fn document(text: &str) -> serde_json::Value {
        PolicyDocument::parse(text).unwrap().policy.to_document()
    }

    #[test]
    fn the_canonical_documents_of_one_policy_are_equal_and_any_change_is_named() {
        let app = r#"{"rules":[{"filter":["app:.*"],"ago":"7d","untagged":true}],"protect":["app:^v0$"]}"#;
        // The same policy written another way: fields reordered, one filter as a string.
        let same =
            r#"{"protect":["app:^v0$"],"rules":[{"untagged":true,"ago":"7d","filter":"app:.*"}]}"#;
        assert!(differences(&document(same), &document(app)).is_empty());
        let wider = r#"{"rules":[{"filter":["app:.*"],"ago":"0d","untagged":true,"includeLocked":true}],"protect":["app:^v0$"]}"#;
        assert_eq!(differences(&document(wider), &document(app)), ["rules"]);
        let narrower = r#"{"rules":[{"filter":["app:.*"],"ago":"7d","untagged":true}],"protect":["app:^v0$","app:^v1$"]}"#;
        assert_eq!(
            differences(&document(narrower), &document(app)),
            ["protect"]
        );
        let unprotected = r#"{"rules":[{"filter":["app:.*"],"ago":"7d","untagged":true}],"protect":["app:^v0$"],"protectInUse":["/subscriptions/s"]}"#;
        assert_eq!(
            differences(&document(app), &document(unprotected)),
            ["protectInUse"]
        );
    }
}
