//! The node's Ed25519 identity: `<dataDir>/identity.key` holds the base64 of the 32-byte seed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};

pub const KEY_FILE: &str = "identity.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a base64 Ed25519 seed of 32 bytes")]
    Malformed { path: PathBuf },
    #[error("no randomness available: {0}")]
    Random(String),
}

#[derive(Debug, thiserror::Error)]
#[error("not a base64 Ed25519 public key of 32 bytes (a point of small order is refused too)")]
pub struct BadPublicKey;

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

pub fn public_key_b64(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().as_bytes())
}

pub fn decode_public_key(b64: &str) -> Result<VerifyingKey, BadPublicKey> {
    let bytes = B64.decode(b64.trim()).map_err(|_| BadPublicKey)?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| BadPublicKey)?;
    let key = VerifyingKey::from_bytes(&arr).map_err(|_| BadPublicKey)?;
    // Under the cofactored check (ZIP 215) anyone can sign for a small-order key.
    if key.is_weak() {
        return Err(BadPublicKey);
    }
    Ok(key)
}

pub fn load(data_dir: &Path) -> Result<Option<SigningKey>, IdentityError> {
    let path = key_path(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Io { path, source }),
    };
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| IdentityError::Malformed { path: path.clone() })?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| IdentityError::Malformed { path })?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// Loads the key, creating it (mode 0600, written atomically) when absent. Idempotent.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, IdentityError> {
    if let Some(k) = load(data_dir)? {
        return Ok(k);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Io { path, source }
    };
    fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| IdentityError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let path = key_path(data_dir);
    let tmp = data_dir.join(".identity.key.tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        writeln!(f, "{}", B64.encode(seed)).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    // A concurrent keygen may have won the race: keep whichever key landed first.
    if path.exists() {
        let _ = fs::remove_file(&tmp);
        return load(data_dir)?.ok_or(IdentityError::Malformed { path });
    }
    fs::rename(&tmp, &path).map_err(io(&path))?;
    crate::storage::fsync_dir(data_dir).map_err(io(data_dir))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small-order points are refused as member keys: under the cofactored check anyone could
    /// sign for them.
    #[test]
    fn small_order_keys_are_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1; // the neutral point, y = 1
        assert!(decode_public_key(&B64.encode(identity)).is_err());
        // a point of order 4: (x, y) = (sqrt(-1), 0)
        assert!(decode_public_key(&B64.encode([0u8; 32])).is_err());
    }

    #[test]
    fn keygen_is_idempotent_and_private() {
        let dir = crate::testutil::TempDir::new("identity");
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(public_key_b64(&a), public_key_b64(&b));
        decode_public_key(&public_key_b64(&a)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
