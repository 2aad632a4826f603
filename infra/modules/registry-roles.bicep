// Roles on the existing registry for the app identity. Deployed with
// `scope: resourceGroup(registryResourceGroup)`, because the registry may live in another
// resource group than the app and a role assignment must be in its deployment's scope.

@description('Name of the existing container registry (in this module\'s resource group).')
param registryName string

@description('Principal id of the app identity.')
param principalId string

@description('classic: the registry honours AcrPull/AcrDelete. abac: "RBAC Registry + ABAC Repository Permissions" mode, where only the Container Registry Repository roles count.')
@allowed([
  'classic'
  'abac'
])
param roleMode string

// Least privilege for a purge: list the catalog, read tags, manifests and referrers, delete.
// classic: AcrPull (list + read) and AcrDelete (delete).
// abac: Container Registry Repository Contributor (read, write metadata, delete; every
// repository, as no ABAC condition is set) and Container Registry Repository Catalog Lister
// (the catalog, which ABAC cannot condition).
var roleIdsByMode = {
  classic: [
    '7f951dda-4ed3-4680-a7ca-43fe172d538d'
    'c2f4ef07-c644-48eb-af81-4b1b4947fb11'
  ]
  abac: [
    '2efddaa5-3f1f-4df3-97df-af3f13818f4c'
    'bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7'
  ]
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
  name: registryName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleIdsByMode[roleMode]: {
    name: guid(registry.id, principalId, roleId)
    scope: registry
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

output loginServer string = registry.properties.loginServer
