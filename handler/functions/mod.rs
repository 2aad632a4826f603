//! The Azure Functions custom handler: the HTTP server the Functions host starts and calls
//! (`PurgeTimer`, `PurgeHttp`), its configuration and the webhook.

pub mod settings;
