// The one user-assigned managed identity of the app. It is used for everything: the host's
// storage, the deployment container, the registry, Key Vault and Application Insights
// ingestion. A user-assigned identity (rather than the site's system identity) can be granted
// its roles before the function app exists, so the app starts with every permission in place.

@description('Name of the identity.')
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
