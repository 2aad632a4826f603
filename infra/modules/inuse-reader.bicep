// Reader on one subscription for the app identity, so that Azure Resource Graph shows it the
// workloads (Container Apps and jobs, Container Instances, App Service and Functions apps)
// whose images in-use protection keeps. Resource Graph returns only the resources the caller
// may read, and no built-in role narrower than Reader grants read on all of these types.
// Deployed once per subscription with `scope: subscription(id)`.
targetScope = 'subscription'

@description('Principal id of the app identity.')
param principalId string

var readerRoleId = 'acdd72a7-3677-44da-8dc8-8093e7a1d0a0'

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, readerRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
