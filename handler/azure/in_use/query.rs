//! The Resource Graph queries the in-use lookup sends: the workloads' image references
//! ([`IN_USE_QUERY`], projecting only the members of [`PROJECTED`]) and the readable
//! subscriptions ([`SUBSCRIPTIONS_QUERY`]), with the limits of a request.

/// The Resource Graph API version used.
pub const API_VERSION: &str = "2022-10-01";

/// The resource types whose images are read.
pub const WORKLOAD_TYPES: &[&str] = &[
    "microsoft.app/containerapps",
    "microsoft.app/jobs",
    "microsoft.app/sessionpools",
    "microsoft.containerinstance/containergroupprofiles",
    "microsoft.containerinstance/containergroups",
    "microsoft.containerservice/managedclusters",
    "microsoft.web/sites",
    "microsoft.web/sites/slots",
];

/// The members of a row's `properties` the decision needs, each projected as a column of
/// its own (column name, member path under `properties`): the image references and what
/// says where else to look, not whole `properties` (an App Service site's or an AKS
/// cluster's run to kilobytes of settings the purge never reads). The row's `properties`
/// is rebuilt from them (`rows::projected_properties`), so the readers below see the shapes
/// Resource Graph holds.
pub const PROJECTED: &[(&str, &str)] = &[
    // Container Apps and jobs: the template, and whether older revisions may serve.
    ("appContainers", "template.containers"),
    ("appInitContainers", "template.initContainers"),
    ("revisionsMode", "configuration.activeRevisionsMode"),
    ("traffic", "configuration.ingress.traffic"),
    ("latestRevisionName", "latestRevisionName"),
    ("latestReadyRevisionName", "latestReadyRevisionName"),
    // Container Apps session pools with custom containers (Microsoft.App/sessionPools:
    // `customContainerTemplate.containers[].image`, Azure's resource type definitions).
    ("poolContainers", "customContainerTemplate.containers"),
    // Container Instances: container groups and container group profiles (the same
    // `containers[].properties.image` shape in both types' definitions).
    ("groupContainers", "containers"),
    ("groupInitContainers", "initContainers"),
    // App Service and Functions sites and slots.
    ("linuxFxVersion", "siteConfig.linuxFxVersion"),
    ("windowsFxVersion", "siteConfig.windowsFxVersion"),
    ("siteProperties", "siteProperties.properties"),
    // AKS: where the API server is, and whether an Entra token can read it.
    ("fqdn", "fqdn"),
    ("aadProfile", "aadProfile"),
    (
        "privateCluster",
        "apiServerAccessProfile.enablePrivateCluster",
    ),
];

/// The query sent (ordered by `id`, which paging needs to be stable): the columns of
/// [`PROJECTED`] besides `id` and `type` (a unit test holds the two in step).
pub const IN_USE_QUERY: &str = "Resources | where type in~ ('microsoft.app/containerapps', 'microsoft.app/jobs', 'microsoft.app/sessionpools', 'microsoft.containerinstance/containergroupprofiles', 'microsoft.containerinstance/containergroups', 'microsoft.containerservice/managedclusters', 'microsoft.web/sites', 'microsoft.web/sites/slots') | project id, type, appContainers = properties.template.containers, appInitContainers = properties.template.initContainers, revisionsMode = properties.configuration.activeRevisionsMode, traffic = properties.configuration.ingress.traffic, latestRevisionName = properties.latestRevisionName, latestReadyRevisionName = properties.latestReadyRevisionName, poolContainers = properties.customContainerTemplate.containers, groupContainers = properties.containers, groupInitContainers = properties.initContainers, linuxFxVersion = properties.siteConfig.linuxFxVersion, windowsFxVersion = properties.siteConfig.windowsFxVersion, siteProperties = properties.siteProperties.properties, fqdn = properties.fqdn, aadProfile = properties.aadProfile, privateCluster = properties.apiServerAccessProfile.enablePrivateCluster | order by id asc";

/// The rows asked for per page (`$top`): the most Resource Graph answers in one page; its
/// default without `$top` is 100 ("Working with large Azure resource data sets",
/// learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data).
pub const PAGE_ROWS: u32 = 1000;

/// The query that confirms the scopes are readable: the subscriptions Resource Graph
/// answers for (it leaves out, without an error, those the identity cannot read).
pub const SUBSCRIPTIONS_QUERY: &str = "ResourceContainers | where type == 'microsoft.resources/subscriptions' | project subscriptionId | order by subscriptionId asc";

/// The most subscriptions one request names; more are sent in batches ("Troubleshoot
/// errors using Azure Resource Graph", "Too many subscriptions").
pub const MAX_SUBSCRIPTIONS_PER_REQUEST: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_projects_exactly_the_members_the_readers_need() {
        let project = IN_USE_QUERY
            .split("| project ")
            .nth(1)
            .and_then(|rest| rest.split(" | ").next())
            .expect("a project clause");
        let mut expected = vec!["id".to_string(), "type".to_string()];
        expected.extend(
            PROJECTED
                .iter()
                .map(|(column, path)| format!("{column} = properties.{path}")),
        );
        assert_eq!(project.split(", ").collect::<Vec<_>>(), expected);
        assert!(
            !project.split(", ").any(|c| c == "properties"),
            "not whole properties"
        );
    }
}
