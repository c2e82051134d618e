//! Root file systems of OCI images, for the `image:` of a logic manifest's `sandbox` steps.
//!
//! A node does not pull from registries itself: its images are in a local [OCI image layout]
//! (what `skopeo copy docker://REF oci:DIR:REF`, `buildah push IMAGE oci:DIR:REF` and
//! `umoci` write), and [`ImageStore::rootfs`] turns a reference into a directory holding the
//! image's root file system:
//!
//! 1. find the reference in the layout's `index.json` (the `org.opencontainers.image.ref.name`
//!    annotation, or a `name@sha256:…` digest), following a multi-platform index to the manifest
//!    of this machine's platform;
//! 2. check the SHA-256 of every blob read (index, manifest, config, layers) against its
//!    descriptor: a layout changed on disk is refused, never unpacked;
//! 3. apply the layers in order into a fresh directory, with the OCI whiteouts (`.wh.<name>`
//!    deletes `<name>` of the layers below, `.wh..wh..opq` hides a directory's lower contents),
//!    never writing outside it (`tar`'s `unpack_in` refuses `..` and symlinked parents);
//!    device nodes are skipped (the sandbox brings its own /dev) and owners are not kept;
//! 4. rename it into the cache under the manifest's digest. The rename is the commit: two tasks
//!    unpacking the same image at once both succeed and one copy stays; an interrupted unpack
//!    leaves only a temporary directory, removed by the next [`ImageStore::rootfs`].
//!
//! The cache is keyed by content, so an unchanged image is unpacked once per node.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/v1.1.0/image-layout.md

mod error;
mod layout;
mod unpack;

use std::path::{Path, PathBuf};

pub use error::ImageError;
pub use layout::{Resolved, REF_NAME};

/// A local OCI image layout and the cache of unpacked root file systems.
#[derive(Debug, Clone)]
pub struct ImageStore {
    layout: PathBuf,
    cache: PathBuf,
}

impl ImageStore {
    pub fn new(layout: impl Into<PathBuf>, cache: impl Into<PathBuf>) -> Self {
        ImageStore {
            layout: layout.into(),
            cache: cache.into(),
        }
    }

    pub fn layout(&self) -> &Path {
        &self.layout
    }

    /// The manifest that `reference` names in the layout, verified.
    pub fn resolve(&self, reference: &str) -> Result<Resolved, ImageError> {
        layout::resolve(&self.layout, reference)
    }

    /// The root file system of `reference`, unpacked into the cache if it is not there yet.
    /// Blocking (file I/O, decompression): call it off async threads.
    pub fn rootfs(&self, reference: &str) -> Result<PathBuf, ImageError> {
        let resolved = self.resolve(reference)?;
        let dir = self.cache.join(resolved.digest.replace(':', "-"));
        if dir.is_dir() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&self.cache).map_err(|e| ImageError::io(&self.cache, e))?;
        unpack::remove_stale_temporaries(&self.cache);
        let tmp = unpack::temporary_dir(&self.cache, &resolved.digest)?;
        let unpacked = unpack::layers(&self.layout, &resolved, &tmp);
        if let Err(e) = unpacked {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another unpack of the same image committed first: keep that one.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(ImageError::io(&dir, e))
            }
        }
    }
}
