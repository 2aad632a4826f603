// Key Vault (RBAC mode) holding the webhook secret; the app identity may read secrets.

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags object = {}

@description('Name of the webhook secret.')
param secretName string

@description('Whether to write secretValue. False leaves the secret already in the vault as it is.')
param writeSecret bool

@secure()
@description('The webhook secret value (written only when writeSecret is true).')
param secretValue string

@description('Principal id of the app identity that reads the secret.')
param principalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  // checkov:skip=CKV_AZURE_109: The app reads the secret over the public endpoint: a Flex app without VNet integration has no fixed outbound address for a firewall rule. Access is RBAC-only (Entra token + Key Vault Secrets User).
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access is required without VNet integration; RBAC authorizes every request.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Purge protection: a deleted vault (and its name) stays recoverable for the retention period.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (writeSecret) {
  // checkov:skip=CKV_AZURE_114: False positive: contentType is set below; Checkov does not read the properties of a conditional (`if`) resource.
  // checkov:skip=CKV_AZURE_41: The webhook secret is shared with ACR and GitHub webhooks and rotated by hand (README); an expiry date would make webhooks fail silently when it passes.
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'text/plain'
  }
}

// Scoped to the vault, which holds nothing but this app's webhook secret.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
