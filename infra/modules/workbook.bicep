// An Azure Monitor workbook over the purge telemetry in Application Insights. Its content is
// infra/workbook.json (edit it in the portal's Advanced editor, paste it back); the
// `__APPINSIGHTS_ID__` placeholder there becomes the component's resource id.

@description('Display name of the workbook.')
param displayName string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object = {}

@description('Resource id of the Application Insights component the workbook queries.')
param appInsightsId string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; stable per component so redeployments update it.
  name: guid(appInsightsId, 'acr-purge-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: replace(loadTextContent('../workbook.json'), '__APPINSIGHTS_ID__', appInsightsId)
  }
}

output id string = workbook.id
