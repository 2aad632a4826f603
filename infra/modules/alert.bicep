// A log search alert on failed purge runs: any `purge` request with success == false in the
// last window fires it, one alert per registry, and so does a fleet queue message moved to the
// poison queue (the host logs "Message has reached MaxDequeueCount of N. Moving message to
// queue 'acr-purge-fleet-poison'."), as registry acr-purge-fleet-poison. Optionally emails an
// address.

@description('Name of the alert rule.')
param name string

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags object = {}

@description('Resource id of the Application Insights component holding the requests.')
param appInsightsId string

@description('Email address to notify; empty: the alert only shows in Azure Monitor.')
param alertEmail string = ''

@description('How often the rule runs and how far back it looks (ISO 8601 duration).')
param window string = 'PT15M'

var notify = !empty(alertEmail)

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (notify) {
  name: '${name}-email'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'acrpurge'
    enabled: true
    emailReceivers: [
      {
        name: 'purge-failures'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource rule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    displayName: 'ACR purge: failed runs'
    description: 'A purge run (request `purge` in Application Insights) ended with success == false.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: window
    windowSize: window
    criteria: {
      allOf: [
        {
          query: 'union (requests | where name == "purge" and success == false | extend registry = tostring(customDimensions["purge.registry"]), trigger = tostring(customDimensions["faas.trigger"]) | project timestamp, registry, trigger, resultCode, operation_Id), (traces | where message has "MaxDequeueCount" and message has "acr-purge-fleet-poison" | project timestamp, registry = "acr-purge-fleet-poison", trigger = "pubsub", resultCode = "poison", operation_Id)'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'registry'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // A failed run is an event, not a state: do not wait for a "resolved" evaluation.
    autoMitigate: false
    actions: {
      actionGroups: notify ? [actionGroup.id] : []
    }
  }
}

output id string = rule.id
