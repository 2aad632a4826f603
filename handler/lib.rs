//! acr-purge library.

pub mod emulator;
