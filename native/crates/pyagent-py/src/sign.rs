//! Ed25519 signing for the node API's Python client: ed25519-dalek with its precomputed base
//! point tables signs in about half the time `cryptography` (OpenSSL) takes, and a busy client
//! signs every command it submits.

use ed25519_dalek::{Signer as _, SigningKey};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// An Ed25519 signing key made from a node's 32-byte seed (its `identity.key`).
#[pyclass(module = "pyagent_compile._native", name = "Ed25519SigningKey", frozen)]
pub struct PySigningKey {
    key: SigningKey,
}

#[pymethods]
impl PySigningKey {
    #[new]
    fn new(seed: &[u8]) -> PyResult<Self> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| PyValueError::new_err("an Ed25519 seed is 32 bytes"))?;
        Ok(PySigningKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The 64-byte signature of `data` (RFC 8032, deterministic).
    fn sign<'py>(&self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key.sign(data).to_bytes())
    }

    /// The 32-byte public key.
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.key.verifying_key().as_bytes())
    }

    fn __repr__(&self) -> String {
        "Ed25519SigningKey(<secret>)".to_string()
    }
}
