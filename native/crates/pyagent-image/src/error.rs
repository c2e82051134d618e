use std::path::{Path, PathBuf};

/// Why an image's root file system could not be had. Each says what to do in its message.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "no OCI image layout at {} (fill it with `skopeo copy docker://REF oci:{}:REF`)",
        path.display(),
        path.display()
    )]
    NoLayout { path: PathBuf },
    #[error("image {reference:?} is not in the layout at {} (it holds: {})", layout.display(), if available.is_empty() { "nothing".to_string() } else { available.join(", ") })]
    NotFound {
        reference: String,
        layout: PathBuf,
        available: Vec<String>,
    },
    #[error("image {reference:?}: no manifest for {platform} in its index")]
    NoPlatform { reference: String, platform: String },
    #[error("blob {digest} of the layout at {}: {what}", layout.display())]
    Corrupt {
        layout: PathBuf,
        digest: String,
        what: String,
    },
    #[error("{what} of media type {media_type:?} is not supported (supported: OCI and Docker v2 manifests, tar and tar+gzip layers)")]
    Unsupported { what: String, media_type: String },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

impl ImageError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        ImageError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
