// Azure Kubernetes Service RBAC Reader on one resource group for the app identity, so that
// in-use protection can list the pods of the AKS clusters in it (GET /api/v1/pods on each
// cluster's API server, with an Entra token for the AKS server application).
//
// Why the resource group and not each cluster: the offline type check (scripts/check-infra,
// definitions in infra/types/) has no Microsoft.ContainerService types, so an `existing`
// managedClusters resource to scope the assignment on cannot be checked; a role assignment at
// resource-group scope needs only Microsoft.Authorization/roleAssignments, which is checked.
// Breadth: the role applies to every cluster in the group, present and future (read of most
// Kubernetes objects in every namespace; not Secrets, Roles or RoleBindings). It is honoured
// only by clusters with Azure RBAC for Kubernetes authorization (aadProfile.enableAzureRBAC);
// a cluster with Kubernetes RBAC alone needs a ClusterRole binding that lists pods instead.
// Deployed once per resource group with `scope: resourceGroup(subscriptionId, name)`.
targetScope = 'resourceGroup'

@description('Principal id of the app identity.')
param principalId string

// Azure Kubernetes Service RBAC Reader (built-in role).
var aksRbacReaderRoleId = '7f6c6a51-bcf8-42ba-9220-52d62157d7db'

resource aksReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, aksRbacReaderRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksRbacReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
