//! acr-purge library.
