// acr-purge: the Rust custom handler on Azure Functions Flex Consumption, purging an existing
// container registry. Deploys into one resource group; the registry may be in another one.
//
//   az deployment group create -g RG -f infra/main.bicep -p infra/main.parameters.json \
//     -p registryName=myreg registryResourceGroup=registry-rg
//
// See infra/README.md for packaging, webhooks and roll-out.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

@description('Name of the existing container registry to purge (without .azurecr.io).')
param registryName string

@description('Resource group of the registry; defaults to the deployment\'s resource group.')
param registryResourceGroup string = resourceGroup().name

@description('Role mode of the registry. classic: AcrPull + AcrDelete. abac ("RBAC Registry + ABAC Repository Permissions"): Container Registry Repository Contributor + Catalog Lister.')
@allowed([
  'classic'
  'abac'
])
param registryRoleMode string = 'classic'

// ---------------------------------------------------------------------------------------------
// Purge behaviour (app settings)
// ---------------------------------------------------------------------------------------------

@description('The purge policy as JSON (policy.schema.json). The default only removes untagged manifests older than 30 days. Empty: the handler falls back to PURGE_POLICY_FILE.')
param purgePolicy string = '{"rules":[{"untaggedOnly":true,"ago":"30d"}]}'

@description('NCRONTAB schedule of PurgeTimer, six fields, UTC (Flex has no time zone setting).')
param purgeSchedule string = '0 0 3 * * *'

@description('true forces every run to be a dry run (report only). Deploy with true first, read the workbook, then set false.')
param purgeDryRun bool = true

// ---------------------------------------------------------------------------------------------
// Webhook secret
// ---------------------------------------------------------------------------------------------

@description('Name of the webhook secret in Key Vault.')
param webhookSecretName string = 'webhook-secret'

@secure()
@description('The webhook secret. Empty: keep or generate one, see generateWebhookSecret.')
param webhookSecret string = ''

@description('When webhookSecret is empty: true writes a newly generated secret (first deployment); false leaves the secret in the vault untouched (later deployments, or the webhooks must be updated).')
param generateWebhookSecret bool = true

@secure()
// checkov:skip=CKV_AZURE_131: Not a hard-coded value: newGuid() yields a new random value on every deployment, and it is only written when a secret is generated.
@description('Do not set: the random value used when a secret is generated. Bicep allows newGuid() only as a parameter default.')
param generatedWebhookSecret string = replace('${newGuid()}${newGuid()}', '-', '')

// ---------------------------------------------------------------------------------------------
// Hosting and monitoring
// ---------------------------------------------------------------------------------------------

@description('Azure region of the new resources (must offer Flex Consumption).')
param location string = resourceGroup().location

@description('Prefix of resource names.')
@minLength(2)
@maxLength(12)
param namePrefix string = 'acr-purge'

// Instances may scale out freely: a run holds its registry's lease in the run store, so two
// instances never purge one registry at once (the loser answers 409 or skips its timer), and
// GET /api/purge/{runId} reads the run's record from the store on whichever instance it reaches.
@description('Most instances per scale group (1-1000; the platform default is 100).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Days a run\'s record, plans and audit log are kept in the run store (lifecycle rule).')
@minValue(30)
@maxValue(3650)
param runRetentionDays int = 400

@description('Memory per instance, in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Days Log Analytics keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Send the registry\'s repository events (ContainerRegistryRepositoryEvents: pulls, pushes, deletes) to the workspace and let the app query them, for rules that age images by their last pull (notPulledFor). Needs rights to add a diagnostic setting on the registry.')
param enablePullLogs bool = false

@description('Days the workspace keeps data when pull logs are on: at least the longest notPulledFor window you use (a longer window than the retention keeps everything, as the logs cannot tell). The workspace keeps the larger of this and logRetentionDays.')
@minValue(30)
@maxValue(730)
param pullLogRetentionDays int = 90

@description('Subscription ids where in-use protection looks for workloads (Resource Graph): the app identity gets Reader on each. Management groups: assign Reader on them yourself (see infra/README.md).')
param inUseSubscriptionIds array = []

@description('Subscription ids where Microsoft Defender for Cloud\'s findings on the registry\'s images are read (the policy\'s findingsScope; the registry\'s subscription at least): the app identity gets Reader on each not already in inUseSubscriptionIds (Reader covers the securityresources table; Security Reader is enough too, see infra/README.md).')
param findingsSubscriptionIds array = []

@description('Resource groups holding the AKS clusters whose pods in-use protection reads, as resource ids (/subscriptions/<id>/resourceGroups/<name>): the app identity gets Azure Kubernetes Service RBAC Reader on each group, so on every cluster in it, present and future (see infra/README.md). Empty: no AKS role is granted.')
param aksReaderResourceGroupIds array = []

@description('Email notified when a purge run fails; empty for no email (the alert still fires in Azure Monitor).')
param alertEmail string = ''

@description('Tags for every resource.')
param tags object = {}

// Names: a short hash of the subscription and resource group keeps global names unique and
// stable across redeployments.
var suffix = take(uniqueString(subscription().id, resourceGroup().id, namePrefix), 8)
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var names = {
  identity: '${namePrefix}-id-${suffix}'
  storage: take('st${compactPrefix}${suffix}', 24)
  deploymentContainer: 'app-package'
  workspace: '${namePrefix}-log-${suffix}'
  appInsights: '${namePrefix}-appi-${suffix}'
  keyVault: take('kv-${compactPrefix}-${suffix}', 24)
  plan: '${namePrefix}-plan-${suffix}'
  functionApp: '${namePrefix}-func-${suffix}'
  alert: '${namePrefix}-failed-runs-${suffix}'
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

// The run store: records, plans, audit logs, checkpoints and leases of every run.
var runsContainerName = 'acr-purge-runs'

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: names.deploymentContainer
    runsContainerName: runsContainerName
    runRetentionDays: runRetentionDays
    principalId: identity.outputs.principalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    location: location
    tags: tags
    retentionInDays: enablePullLogs ? max(logRetentionDays, pullLogRetentionDays) : logRetentionDays
    principalId: identity.outputs.principalId
    grantQuery: enablePullLogs
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    secretName: webhookSecretName
    writeSecret: !empty(webhookSecret) || generateWebhookSecret
    secretValue: empty(webhookSecret) ? generatedWebhookSecret : webhookSecret
    principalId: identity.outputs.principalId
  }
}

module registryRoles 'modules/registry-roles.bicep' = {
  name: 'registry-roles'
  scope: resourceGroup(registryResourceGroup)
  params: {
    registryName: registryName
    principalId: identity.outputs.principalId
    roleMode: registryRoleMode
  }
}

module registryDiagnostics 'modules/registry-diagnostics.bicep' = if (enablePullLogs) {
  name: 'registry-diagnostics'
  scope: resourceGroup(registryResourceGroup)
  params: {
    registryName: registryName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module inUseReaders 'modules/inuse-reader.bicep' = [
  for subscriptionId in inUseSubscriptionIds: {
    name: 'inuse-reader-${subscriptionId}'
    scope: subscription(subscriptionId)
    params: {
      principalId: identity.outputs.principalId
    }
  }
]

module findingsReaders 'modules/inuse-reader.bicep' = [
  for subscriptionId in filter(findingsSubscriptionIds, s => !contains(inUseSubscriptionIds, s)): {
    name: 'findings-reader-${subscriptionId}'
    scope: subscription(subscriptionId)
    params: {
      principalId: identity.outputs.principalId
    }
  }
]

// Resource-group scope, not the clusters themselves: see modules/aks-reader.bicep. A resource id
// /subscriptions/<id>/resourceGroups/<name> splits into '', 'subscriptions', <id>,
// 'resourceGroups', <name>.
module aksReaders 'modules/aks-reader.bicep' = [
  for groupId in aksReaderResourceGroupIds: {
    name: 'aks-reader-${uniqueString(toLower(groupId))}'
    scope: resourceGroup(split(groupId, '/')[2], split(groupId, '/')[4])
    params: {
      principalId: identity.outputs.principalId
    }
  }
]

// Uses the outputs of every module above, so it is deployed after all of them, roles included.
module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  dependsOn: [
    registryDiagnostics
    inUseReaders
    findingsReaders
    aksReaders
  ]
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    runsContainerName: storage.outputs.runsContainerName
    queueServiceUri: storage.outputs.queueServiceUri
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    registryLoginServer: registryRoles.outputs.loginServer
    // Parsed and re-serialized: a policy that is not JSON fails the deployment, not the first
    // run. Empty stays empty (the handler then reads PURGE_POLICY_FILE).
    purgePolicy: empty(purgePolicy) ? '' : string(json(purgePolicy))
    purgeSchedule: purgeSchedule
    purgeDryRun: purgeDryRun
    keyVaultUri: keyVault.outputs.uri
    webhookSecretName: webhookSecretName
    appInsightsConnectionString: monitoring.outputs.connectionString
    logsWorkspaceId: enablePullLogs ? monitoring.outputs.workspaceCustomerId : ''
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    displayName: 'ACR purge runs (${registryName})'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

module alert 'modules/alert.bicep' = {
  name: 'alert'
  params: {
    name: names.alert
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
  }
}

output functionAppName string = functionApp.outputs.name
@description('PurgeHttp without its key: add ?code=<function key> (az functionapp function keys list).')
output webhookUrl string = 'https://${functionApp.outputs.defaultHostName}/api/purge'
output identityClientId string = identity.outputs.clientId
@description('The run store, for handler runs list --state-url (needs Storage Blob Data Reader on it).')
output runStoreUrl string = storage.outputs.runsContainerUrl
@description('The fleet queue (one message per registry run) and its poison queue.')
output fleetQueues array = [
  storage.outputs.fleetQueueName
  storage.outputs.poisonQueueName
]
output keyVaultName string = keyVault.outputs.name
output registryLoginServer string = registryRoles.outputs.loginServer
