// The Flex Consumption plan and the Linux function app running the Rust custom handler,
// with its app settings. This is the only place app settings are set: they are the object
// literal between the `app-settings:begin` / `app-settings:end` markers below, one
// `NAME: value` per line, and tests/infra_consistency.rs checks that the names are exactly the
// deployed settings of handler/functions/settings.rs.

@description('Name of the function app (globally unique host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags object = {}

@description('Resource id of the app identity.')
param identityId string

@description('Client id of the app identity.')
param identityClientId string

@description('Name of the host storage account (AzureWebJobsStorage).')
param storageAccountName string

@description('URL of the blob container Flex deploys the package from.')
param deploymentContainerUrl string

@description('Queue endpoint of that account (the fleet queue; the host reaches it with the identity).')
param queueServiceUri string

@description('Blob container of the run store, in the storage account above.')
param runsContainerName string

@description('Most instances the app may scale out to (per scale group).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Login server of the registry to purge, e.g. myreg.azurecr.io.')
param registryLoginServer string

@description('The purge policy, JSON.')
param purgePolicy string

@description('NCRONTAB schedule (UTC, six fields) of PurgeTimer.')
param purgeSchedule string

@description('Whether every run is forced to be a dry run.')
param purgeDryRun bool

@description('URI of the Key Vault holding the webhook secret.')
param keyVaultUri string

@description('Name of the webhook secret in that vault.')
param webhookSecretName string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('Customer id of the Log Analytics workspace holding the registry\'s repository events; empty when they are not collected.')
param logsWorkspaceId string = ''

// The app settings. Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTSHARE,
// WEBSITE_TIME_ZONE and the like: the runtime comes from functionAppConfig, schedules are UTC.
// They are set with the site (siteConfig.appSettings), so the host never starts without its
// storage settings; a deployment replaces settings added by hand.
// app-settings:begin
var appSettings = {
  PURGE_REGISTRY: registryLoginServer
  PURGE_POLICY: purgePolicy
  PURGE_SCHEDULE: purgeSchedule
  PURGE_DRY_RUN: purgeDryRun ? 'true' : 'false'
  AZURE_CLIENT_ID: identityClientId
  KEY_VAULT_URL: keyVaultUri
  WEBHOOK_SECRET_NAME: webhookSecretName
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__queueServiceUri: queueServiceUri
  PURGE_RUNS_CONTAINER: runsContainerName
  PURGE_LOGS_WORKSPACE_ID: logsWorkspaceId
}
// app-settings:end

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is not offered in every Flex region; a purge is a scheduled batch job, so a zone outage only delays a run until the next trigger.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero by design; a purge is a scheduled batch job that needs no standby instance for failover.
  // checkov:skip=CKV_AZURE_213: No health check path: the Functions host itself checks that the custom handler answers before it routes invocations, and a scale-to-zero app has no idle instance to probe.
  // checkov:skip=CKV_AZURE_17: Client certificates: ACR and GitHub webhooks cannot present one.
  // checkov:skip=CKV_AZURE_222: Public network access: ACR and GitHub deliver webhooks from the internet.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        for setting in items(appSettings): {
          name: setting.key
          value: setting.value
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // The Rust binary runs as a custom handler (host.json customHandler).
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// No publishing with user names and passwords: `az functionapp deployment source config-zip`
// and `func azure functionapp publish` use Entra tokens.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
