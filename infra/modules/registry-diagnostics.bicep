// The registry's repository events (pushes, pulls, deletes: ContainerRegistryRepositoryEvents)
// sent to the app's Log Analytics workspace, so a purge can age images by their last pull.
// Deployed with `scope: resourceGroup(registryResourceGroup)`, beside registry-roles.bicep,
// because the diagnostic setting is an extension resource of the registry.

@description('Name of the existing container registry (in this module\'s resource group).')
param registryName string

@description('Resource id of the Log Analytics workspace receiving the events.')
param workspaceId string

@description('Name of the diagnostic setting.')
param settingName string = 'acr-purge-repository-events'

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
  name: registryName
}

// Only the category the purge reads: login events and metrics are not needed.
resource repositoryEvents 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: registry
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'ContainerRegistryRepositoryEvents'
        enabled: true
      }
    ]
  }
}
