// The host's storage account (AzureWebJobsStorage: timer schedule status, host locks, keys)
// and the blob container Flex Consumption deploys the app package from. Keys are disabled:
// the identity reaches it with Entra tokens only.

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags object = {}

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Blob container of the run store (records, plans, audit logs, checkpoints, leases).')
param runsContainerName string

@description('Days a run\'s blobs are kept after their last change (the audit log of a run a month ago stays).')
param runRetentionDays int

@description('Principal id of the app identity, granted the data roles the Functions host needs.')
param principalId string

// Storage Blob Data Owner (blobs: timer status, locks, the deployment package, the run store and
// its leases), Storage Queue Data Contributor (the fleet queue: PurgeTimer's output binding adds
// messages, PurgeQueue's trigger reads, deletes and re-queues them, and the host creates and
// writes the poison queue; Storage Queue Data Message Processor would not let it add messages)
// and Storage Table Data Contributor (host internals).
var roleIds = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  // checkov:skip=CKV_AZURE_35: The Functions host and One deploy reach this account over its public endpoint; a Flex app without VNet integration has no fixed outbound address to allow. Access needs an Entra token (shared keys are off).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public network access is what a non-VNet Flex app uses; keys are disabled and every access is authorized by RBAC.
  // checkov:skip=CKV_AZURE_206: Host state and the deployment package are reproducible (redeploy), so locally redundant storage is enough; geo-replication would only add cost.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource runsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: runsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' = {
  parent: storage
  name: 'default'
  properties: {}
}

// The fleet queue: one message per registry due (PurgeTimer) or per run to continue
// (PurgeQueue); the host moves a message that failed maxDequeueCount times (host.json) to
// the poison queue, which the failed-run alert watches.
resource fleetQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' = {
  parent: queueService
  name: 'acr-purge-fleet'
  properties: {
    metadata: {
      purpose: 'acr-purge fleet: one message per registry run'
    }
  }
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' = {
  parent: queueService
  name: 'acr-purge-fleet-poison'
  properties: {
    metadata: {
      purpose: 'acr-purge fleet: messages that failed maxDequeueCount times'
    }
  }
}

// Runs are kept for runRetentionDays after their last write, then deleted, and saved plans
// for a week; the registries/ prefix (leases and checkpoints of runs under way) is left alone.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2024-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-purge-runs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${runsContainerName}/runs/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: runRetentionDays
                }
              }
            }
          }
        }
        {
          // Plans saved by dry runs for {"apply": digest}: the webhook refuses them after a
          // day; they are kept a week for review.
          name: 'expire-saved-plans'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${runsContainerName}/saved-plans/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: 7
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleIds: {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      // Set, so that a freshly created identity is not looked up in Entra (replication delay).
      principalType: 'ServicePrincipal'
    }
  }
]

output name string = storage.name
output runsContainerName string = runsContainer.name
output runsContainerUrl string = '${storage.properties.primaryEndpoints.blob}${runsContainer.name}'
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer.name}'
output queueServiceUri string = storage.properties.primaryEndpoints.queue
output fleetQueueName string = fleetQueue.name
output poisonQueueName string = poisonQueue.name
