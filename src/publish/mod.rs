//! The producer side (feature `producer`, enabled by `cli`): pack a
//! directory into an OCI image layout, push it, build container images,
//! save and load packages for air-gapped machines, inspect, list and prune
//! the cache, lock references, log in and out.
//!
//! ```no_run
//! # fn main() -> ocipkg::Result<()> {
//! use std::path::Path;
//! let packed = ocipkg::publish::Packer::new()
//!     .target("x86_64-unknown-linux-gnu")
//!     .pack(Path::new("dist"), "ghcr.io/org/libfoo:1.2", Path::new("libfoo.tar"))?;
//! let pushed = ocipkg::publish::push(&packed.output, None)?;
//! println!("{}", pushed.manifest_digest);
//! # Ok(())
//! # }
//! ```

mod binaries;
mod image;
mod inventory;
mod pack;
mod push;
mod tools;
mod transfer;

pub use crate::oci::format::{LibrarySpec, LinkMetadata};
pub use crate::oci::reference::Reference;
pub use image::{BuiltImage, ImageBuilder};
pub use inventory::{inspect, list_cache, prune, CachedPackage, Inspection, Pruned};
pub use pack::{pack, LayerCompression, Packed, Packer, ZSTD_DEFAULT_LEVEL, ZSTD_MAX_LEVEL};
pub use push::{push, Pushed};
pub use tools::{list_tags, lock, login, logout};
pub use transfer::{load, save, Saved};
