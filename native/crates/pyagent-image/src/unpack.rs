//! Applying layers: tar streams (optionally gzip-compressed) with OCI whiteouts, into a fresh
//! directory, each layer's SHA-256 checked as it is read.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::layout::{self, Descriptor, Resolved};
use crate::ImageError;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const TEMPORARY: &str = ".unpacking-";

/// A fresh directory in the cache for one unpack.
pub fn temporary_dir(cache: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| ImageError::Io {
        path: cache.to_path_buf(),
        message: format!("no randomness for a temporary name: {e}"),
    })?;
    let name = format!(
        "{TEMPORARY}{}-{}",
        digest.replace(':', "-"),
        u64::from_le_bytes(nonce)
    );
    let dir = cache.join(name);
    std::fs::create_dir(&dir).map_err(|e| ImageError::io(&dir, e))?;
    // An image's `/` is 0755 whatever the daemon's umask (a node runs under 077): the sandbox
    // user reaches the root through it.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| ImageError::io(&dir, e))?;
    Ok(dir)
}

/// Temporaries of unpacks that did not finish (the process died): an hour old at least, so a
/// concurrent unpack of another task is left alone.
pub fn remove_stale_temporaries(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if old && e.file_name().to_string_lossy().starts_with(TEMPORARY) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub fn layers(layout: &Path, image: &Resolved, root: &Path) -> Result<(), ImageError> {
    for layer in &image.layers {
        apply(layout, layer, root)?;
    }
    Ok(())
}

/// Hashes what passes through, for the layer's digest.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

fn apply(layout: &Path, layer: &Descriptor, root: &Path) -> Result<(), ImageError> {
    let gzip = match layer.media_type.as_str() {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => false,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => true,
        other => {
            return Err(ImageError::Unsupported {
                what: format!("layer {}", layer.digest),
                media_type: other.to_string(),
            })
        }
    };
    let path = layout::blob_path(layout, &layer.digest)?;
    let file = std::fs::File::open(&path).map_err(|e| ImageError::io(&path, e))?;
    let mut hashing = Hashing {
        inner: io::BufReader::new(file),
        hash: Sha256::new(),
        size: 0,
    };
    let unpacked = if gzip {
        let mut gz = flate2::read::GzDecoder::new(&mut hashing);
        let r = entries(&mut gz, root);
        // The rest of the compressed stream (tar's end blocks), so the digest covers it all.
        r.and_then(|()| io::copy(&mut gz, &mut io::sink()).map(|_| ()))
    } else {
        let r = entries(&mut hashing, root);
        r.and_then(|()| io::copy(&mut hashing, &mut io::sink()).map(|_| ()))
    };
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| ImageError::io(&path, e))?;
    let digest = hashing.hash.finalize();
    // A layer that does not match its digest is reported as such, whatever the tar reader
    // made of it.
    layout::check(layout, layer, hashing.size, &digest)?;
    unpacked.map_err(|e| layout::corrupt(layout, &layer.digest, format!("unpacking: {e}")))
}

/// One layer's entries onto `root`.
fn entries(stream: &mut dyn Read, root: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(false);
    archive.set_overwrite(true);
    // What this layer wrote: an opaque whiteout hides what lower layers left in a directory,
    // not what this layer puts there (its entries may come before the marker).
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(rel) = clean(&entry.path()?) else {
            continue;
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE {
            clear_lower(root, &parent, &written)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            remove_inside(root, &parent.join(hidden))?;
            continue;
        }
        use tar::EntryType::*;
        if matches!(entry.header().entry_type(), Char | Block | Fifo) {
            continue;
        }
        if entry.unpack_in(root)? {
            written.insert(rel);
        }
    }
    Ok(())
}

/// The entry's path relative to the root: no `/` prefix, no `.`, no `..` (refused: None).
fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// `rel`'s parent resolved inside `root` (no symlink leading out), or None.
fn inside(root: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    let root = root.canonicalize()?;
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => match root.join(p).canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        },
        _ => root.clone(),
    };
    if !parent.starts_with(&root) {
        return Ok(None);
    }
    Ok(rel.file_name().map(|n| parent.join(n)))
}

fn remove_inside(root: &Path, rel: &Path) -> io::Result<()> {
    let Some(target) = inside(root, rel)? else {
        return Ok(());
    };
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&target),
        Ok(_) => std::fs::remove_file(&target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_lower(root: &Path, dir: &Path, written: &HashSet<PathBuf>) -> io::Result<()> {
    let real = if dir.as_os_str().is_empty() {
        Some(root.canonicalize()?)
    } else {
        inside(root, &dir.join("x"))?.and_then(|p| p.parent().map(Path::to_path_buf))
    };
    let Some(real) = real.filter(|p| p.is_dir()) else {
        return Ok(());
    };
    for e in std::fs::read_dir(&real)?.flatten() {
        let rel = dir.join(e.file_name());
        if !written.iter().any(|w| w.starts_with(&rel)) {
            remove_inside(root, &rel)?;
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            // This layer wrote into it: what lower layers left inside is hidden all the same.
            clear_lower(root, &rel, written)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_inside() {
        assert_eq!(
            clean(Path::new("./usr/bin/x")),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(
            clean(Path::new("/etc/passwd")),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(clean(Path::new("a/../../etc")), None);
        assert_eq!(clean(Path::new("./")), None);
    }
}
