//! Reading an OCI image layout: `oci-layout`, `index.json`, and blobs by digest, each checked
//! against its descriptor before it is used.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::ImageError;

/// The annotation holding a manifest's reference name in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Index and manifest documents are small; a bigger one is not what it claims to be.
const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// A reference resolved to one image manifest of this platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub reference: String,
    /// The digest of the image manifest (the cache key).
    pub digest: String,
    pub layers: Vec<Descriptor>,
}

/// This machine's platform in OCI's words.
fn this_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

pub fn resolve(layout: &Path, reference: &str) -> Result<Resolved, ImageError> {
    let marker = layout.join("oci-layout");
    if !marker.is_file() {
        return Err(ImageError::NoLayout {
            path: layout.to_path_buf(),
        });
    }
    let index_path = layout.join("index.json");
    let index: Index = parse(&index_path, &read_limited(&index_path)?)?;
    let descriptor = find(&index.manifests, reference).ok_or_else(|| ImageError::NotFound {
        reference: reference.to_string(),
        layout: layout.to_path_buf(),
        available: index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).cloned())
            .collect(),
    })?;
    let manifest = manifest_of(layout, reference, descriptor)?;
    Ok(Resolved {
        reference: reference.to_string(),
        digest: manifest.0,
        layers: manifest.1.layers,
    })
}

/// The descriptor named `reference`: by its ref-name annotation, or by digest for `…@sha256:…`.
fn find<'a>(manifests: &'a [Descriptor], reference: &str) -> Option<&'a Descriptor> {
    let by_name = manifests
        .iter()
        .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(reference));
    let digest = reference.rsplit_once('@').map(|(_, d)| d);
    by_name.or_else(|| digest.and_then(|d| manifests.iter().find(|m| m.digest == d)))
}

/// Follows an index (multi-platform image) to this platform's manifest; returns its digest.
fn manifest_of(
    layout: &Path,
    reference: &str,
    descriptor: &Descriptor,
) -> Result<(String, Manifest), ImageError> {
    let mut d = descriptor.clone();
    // An index may name an index; two levels are what registries produce.
    for _ in 0..3 {
        let bytes = read_blob(layout, &d, MAX_DOCUMENT)?;
        let media_type = if d.media_type.is_empty() {
            media_type_of(&bytes)
        } else {
            d.media_type.clone()
        };
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let index: Index = parse(&blob_path(layout, &d.digest)?, &bytes)?;
                let (os, arch) = this_platform();
                d = index
                    .manifests
                    .into_iter()
                    .find(|m| {
                        m.platform
                            .as_ref()
                            .is_some_and(|p| p.os == os && p.architecture == arch)
                    })
                    .ok_or_else(|| ImageError::NoPlatform {
                        reference: reference.to_string(),
                        platform: format!("{os}/{arch}"),
                    })?;
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let m: Manifest = parse(&blob_path(layout, &d.digest)?, &bytes)?;
                // The config is not needed to unpack, but a layout whose config is missing or
                // altered is not the image that was copied in.
                read_blob(layout, &m.config, MAX_DOCUMENT)?;
                return Ok((d.digest, m));
            }
            other => {
                return Err(ImageError::Unsupported {
                    what: format!("image {reference:?}"),
                    media_type: other.to_string(),
                })
            }
        }
    }
    Err(ImageError::Unsupported {
        what: format!("image {reference:?} (indexes nested too deep)"),
        media_type: d.media_type,
    })
}

fn media_type_of(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        #[serde(default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Typed>(bytes) {
        Ok(t) if !t.media_type.is_empty() => t.media_type,
        Ok(t) if t.manifests.is_some() => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Io {
        path: path.to_path_buf(),
        message: format!("not a valid OCI document: {e}"),
    })
}

fn read_limited(path: &Path) -> Result<Vec<u8>, ImageError> {
    let file = std::fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io(path, e))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(ImageError::Io {
            path: path.to_path_buf(),
            message: format!("larger than {MAX_DOCUMENT} bytes"),
        });
    }
    Ok(bytes)
}

/// `blobs/<algorithm>/<hex>`, for sha256 digests only (what every tool writes).
pub fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ImageError::Corrupt {
            layout: layout.to_path_buf(),
            digest: digest.to_string(),
            what: "not a sha256 digest".into(),
        })?;
    Ok(layout.join("blobs").join("sha256").join(hex))
}

/// A small blob, read whole and checked.
fn read_blob(layout: &Path, d: &Descriptor, max: u64) -> Result<Vec<u8>, ImageError> {
    if d.size > max {
        return Err(corrupt(
            layout,
            &d.digest,
            format!("{} bytes is too large for a document", d.size),
        ));
    }
    let path = blob_path(layout, &d.digest)?;
    let bytes = std::fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
    check(layout, d, bytes.len() as u64, &Sha256::digest(&bytes))?;
    Ok(bytes)
}

pub(crate) fn corrupt(layout: &Path, digest: &str, what: String) -> ImageError {
    ImageError::Corrupt {
        layout: layout.to_path_buf(),
        digest: digest.to_string(),
        what,
    }
}

/// The size and SHA-256 read against the descriptor's.
pub(crate) fn check(
    layout: &Path,
    d: &Descriptor,
    size: u64,
    sha256: &[u8],
) -> Result<(), ImageError> {
    if size != d.size {
        return Err(corrupt(
            layout,
            &d.digest,
            format!("{size} bytes, the descriptor says {}", d.size),
        ));
    }
    let got = format!("sha256:{}", hex(sha256));
    if got != d.digest {
        return Err(corrupt(
            layout,
            &d.digest,
            format!("its content hashes to {got}"),
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
