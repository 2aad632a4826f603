//! Saved plans: sealing, reading back, and every refusal.

use super::*;
use crate::plan::fixture::{Listing, Manifest};
use crate::policy::PolicyDocument;

const DAY: i64 = 24 * 60;

fn policy() -> crate::policy::Policy {
    PolicyDocument::parse(r#"{"rules":[{"filter":["r:.*"],"ago":"1d","untagged":true}]}"#)
        .expect("policy")
        .policy
}

fn sealed() -> SavedPlan {
    let listing = Listing::new(Utc::now())
        .with(Manifest::image("a").age(3 * DAY).tag("a", 3 * DAY))
        .with(Manifest::image("u").age(5 * DAY));
    let plan = listing
        .plan("r", &policy())
        .expect("plan")
        .expect("covered");
    let repository = SavedRepository {
        repository: plan.repository,
        tags: plan.tags,
        manifests: plan.manifests,
    };
    SavedPlan::seal(
        "reg.azurecr.io",
        Utc::now(),
        &policy(),
        None,
        vec![repository],
    )
}

#[test]
fn a_sealed_plan_reads_back_equal() {
    let plan = sealed();
    let again = SavedPlan::parse(&plan.to_json()).expect("parses");
    assert_eq!(again, plan);
    assert!(plan.digest().starts_with("sha256:") && plan.digest().len() == 71);
    let policy = again
        .check("REG.azurecr.io", DEFAULT_MAX_AGE, Utc::now())
        .expect("applicable");
    assert_eq!(policy.to_document(), plan.policy);
    assert_eq!(again.repositories_with_deletions().count(), 1);
}

#[test]
fn an_edited_plan_is_refused() {
    let text = sealed().to_json();
    // Turning a kept item into a deletion, a changed digest, an extra tag: each is caught.
    for (from, to) in [
        ("\"decision\": \"keep\"", "\"decision\": \"delete\""),
        ("\"decision\": \"delete\"", "\"decision\": \"keep\""),
        ("\"ago\": \"1d\"", "\"ago\": \"1h\""),
        (
            "\"registry\": \"reg.azurecr.io\"",
            "\"registry\": \"other.azurecr.io\"",
        ),
    ] {
        let edited = text.replacen(from, to, 1);
        if edited == text {
            continue;
        }
        let error = SavedPlan::parse(&edited).expect_err(from);
        assert!(
            matches!(
                error,
                SavedPlanError::Tampered { .. } | SavedPlanError::Unreadable(_)
            ),
            "{from}: {error}"
        );
    }
    let edited = text.replacen(
        "\"decision\": \"delete\"",
        "\"decision\": \"keep\",\n \"reason\": \"notSelected\"",
        1,
    );
    assert!(SavedPlan::parse(&edited).is_err());
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
    value.as_object_mut().expect("object").remove("digest");
    let error = SavedPlan::parse(&value.to_string()).expect_err("no digest");
    assert!(matches!(error, SavedPlanError::Tampered { .. }), "{error}");
}

#[test]
fn refusals_say_why() {
    let plan = sealed();
    let now = Utc::now();
    let other = plan
        .check("other.azurecr.io", DEFAULT_MAX_AGE, now)
        .expect_err("other");
    assert!(other.to_string().contains("other.azurecr.io"), "{other}");
    let old = plan
        .check(
            "reg.azurecr.io",
            DEFAULT_MAX_AGE,
            now + TimeDelta::hours(25),
        )
        .expect_err("too old");
    assert!(old.to_string().contains("more than 1d ago"), "{old}");
    let fine = plan.check(
        "reg.azurecr.io",
        TimeDelta::hours(48),
        now + TimeDelta::hours(25),
    );
    assert!(fine.is_ok());
    let future = plan
        .check("reg.azurecr.io", DEFAULT_MAX_AGE, now - TimeDelta::hours(1))
        .expect_err("future");
    assert!(matches!(future, SavedPlanError::FromTheFuture(_)));
    let text = plan.to_json().replace(FORMAT, "acr-purge/plan/v9");
    assert!(matches!(
        SavedPlan::parse(&text),
        Err(SavedPlanError::Format(_))
    ));
    assert!(matches!(
        SavedPlan::parse("[]"),
        Err(SavedPlanError::Unreadable(_))
    ));
}
