//! The OCI vocabulary: references, digests, platforms and targets, media
//! types and the package format, manifests and indexes. Pure data and
//! parsing; no I/O beyond what a [`manifest::Source`] hands over.

pub(crate) mod digest;
pub(crate) mod format;
pub(crate) mod manifest;
pub(crate) mod platform;
pub(crate) mod reference;
