//! `pyagent_compile._native`: Python bindings over the native crates.
use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NULL_BLOCK", kv_v2::NULL_BLOCK)?;
    Ok(())
}
