//! The scopes of a Resource Graph query: subscriptions (in batches of at most
//! [`MAX_SUBSCRIPTIONS_PER_REQUEST`]) and management groups, confirmed readable before any
//! workload is read (Resource Graph leaves out, without an error, what the identity cannot
//! read).

use super::query::{MAX_SUBSCRIPTIONS_PER_REQUEST, SUBSCRIPTIONS_QUERY};
use super::{InUseClient, InUseError};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Where the in-use lookup looks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InUseScope {
    /// A subscription id.
    Subscription(String),
    /// A management group name (id).
    ManagementGroup(String),
}

impl InUseClient {
    /// Every row `query` answers over `scopes`, after confirming they are readable (see the
    /// module documentation), through every page and batch; fails closed as
    /// [`InUseClient::images`] does.
    pub async fn query_rows(
        &self,
        scopes: &[InUseScope],
        query: &str,
    ) -> Result<Vec<Map<String, Value>>, InUseError> {
        let subscriptions: Vec<&str> = scopes
            .iter()
            .filter_map(|s| match s {
                InUseScope::Subscription(id) => Some(id.as_str()),
                InUseScope::ManagementGroup(_) => None,
            })
            .collect();
        let groups: Vec<&str> = scopes
            .iter()
            .filter_map(|s| match s {
                InUseScope::ManagementGroup(id) => Some(id.as_str()),
                InUseScope::Subscription(_) => None,
            })
            .collect();
        if subscriptions.is_empty() && groups.is_empty() {
            return Err(InUseError::NoScope);
        }
        self.check_scopes(&subscriptions, &groups).await?;
        let mut rows = Vec::new();
        let mut requests: Vec<(&str, &[&str])> = subscriptions
            .chunks(MAX_SUBSCRIPTIONS_PER_REQUEST)
            .map(|batch| ("subscriptions", batch))
            .collect();
        if !groups.is_empty() {
            requests.push(("managementGroups", groups.as_slice()));
        }
        for (field, ids) in requests {
            rows.extend(self.rows(field, ids, query).await?);
        }
        Ok(rows)
    }

    /// Confirms every subscription is readable ([`SUBSCRIPTIONS_QUERY`] over the same
    /// scopes, in batches), and every management group shows at least one subscription;
    /// else names those that are not.
    async fn check_scopes(
        &self,
        subscriptions: &[&str],
        groups: &[&str],
    ) -> Result<(), InUseError> {
        let mut unreadable = Vec::new();
        let readable = |rows: &[Map<String, Value>]| -> BTreeSet<String> {
            rows.iter()
                .filter_map(|r| r.get("subscriptionId").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        };
        for batch in subscriptions.chunks(MAX_SUBSCRIPTIONS_PER_REQUEST) {
            match self.rows("subscriptions", batch, SUBSCRIPTIONS_QUERY).await {
                Ok(rows) => {
                    let seen = readable(&rows);
                    unreadable.extend(
                        batch
                            .iter()
                            .filter(|s| !seen.contains(&s.to_ascii_lowercase()))
                            .map(|s| format!("subscription {s}")),
                    );
                }
                Err(InUseError::Status { status: 403, .. }) => {
                    unreadable.extend(batch.iter().map(|s| format!("subscription {s}")));
                }
                Err(other) => return Err(other),
            }
        }
        for group in groups {
            let none = match self
                .rows("managementGroups", &[*group], SUBSCRIPTIONS_QUERY)
                .await
            {
                Ok(rows) => readable(&rows).is_empty(),
                Err(InUseError::Status { status: 403, .. }) => true,
                Err(other) => return Err(other),
            };
            if none {
                unreadable.push(format!(
                    "management group {group} (no subscription of it is readable)"
                ));
            }
        }
        match unreadable.is_empty() {
            true => Ok(()),
            false => Err(InUseError::ScopesUnreadable { scopes: unreadable }),
        }
    }
}
