//! `pyagent_compile._native`: Python bindings over the native crates.
//!
//! Calls are batched: keys cross the boundary as one `bytes` blob of 16-byte big-endian keys,
//! block ids as one list, so a single call handles a whole request. Work on large batches runs
//! with the interpreter detached (`Python::detach`); small calls keep it, because detaching
//! costs more than the work.

use std::path::PathBuf;

mod sign;

use kv_v2::{
    persist, BlockHasher, Config, Digest, DupPolicy, EventKind, Extra, HashMode, Key, KvError,
    Medium, MmFeature, Policy, Pool, Requests,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOverflowError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

create_exception!(
    _native,
    KvCacheError,
    PyException,
    "A KV_v2 operation failed."
);
create_exception!(
    _native,
    KvOutOfBlocksError,
    KvCacheError,
    "Not enough blocks, even after evicting every evictable block."
);
create_exception!(
    _native,
    KvCorruptIndexError,
    KvCacheError,
    "A persisted prefix index is truncated, corrupt or for another pool; it was not loaded."
);

/// Batches at least this large run with the interpreter detached.
const DETACH_AT: usize = 512;

fn err(e: KvError) -> PyErr {
    match e {
        KvError::OutOfBlocks { .. } => KvOutOfBlocksError::new_err(e.to_string()),
        KvError::Corrupt(_) => KvCorruptIndexError::new_err(e.to_string()),
        _ => KvCacheError::new_err(e.to_string()),
    }
}

fn keys_from(blob: &[u8]) -> PyResult<Vec<Key>> {
    let mut v = Vec::new();
    keys_into(blob, &mut v)?;
    Ok(v)
}

/// Parse a key blob into `out` (cleared first), reusing its allocation.
fn keys_into(blob: &[u8], out: &mut Vec<Key>) -> PyResult<()> {
    out.clear();
    if !blob.len().is_multiple_of(16) {
        return Err(PyValueError::new_err(format!(
            "a key blob is a multiple of 16 bytes, got {}",
            blob.len()
        )));
    }
    out.extend(blob.chunks_exact(16).map(|c| {
        let mut b = [0u8; 16];
        b.copy_from_slice(c);
        u128::from_be_bytes(b)
    }));
    Ok(())
}

fn one_key(b: &[u8]) -> PyResult<Key> {
    match <[u8; 16]>::try_from(b) {
        Ok(a) => Ok(u128::from_be_bytes(a)),
        Err(_) => Err(PyValueError::new_err("expected exactly one 16-byte key")),
    }
}

/// Block ids from a Python list (read in place: no iterator protocol, no sequence probing)
/// or any other sequence, into `out` (cleared first, its allocation reused).
fn ids_into(obj: &Bound<'_, PyAny>, out: &mut Vec<u32>) -> PyResult<()> {
    out.clear();
    if let Ok(list) = obj.cast::<PyList>() {
        let n = list.len();
        out.reserve(n);
        let py = obj.py();
        for i in 0..n {
            #[allow(unsafe_code)]
            // SAFETY: `i < n`, the length of a list we hold a reference to with the interpreter
            // attached, and no Python code runs in this loop, so the list cannot change under
            // us: `PyList_GetItem` returns a borrowed reference to a live item (or NULL with an
            // error set, handled as one). `PyLong_AsUnsignedLong` accepts any object and
            // reports a wrong type or an overflow as -1 with an error set.
            let v = unsafe {
                let item = ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t);
                if item.is_null() {
                    return Err(PyErr::fetch(py));
                }
                ffi::PyLong_AsUnsignedLong(item)
            };
            if v == std::ffi::c_ulong::MAX && PyErr::occurred(py) {
                return Err(PyErr::fetch(py));
            }
            out.push(
                u32::try_from(v)
                    .map_err(|_| PyOverflowError::new_err(format!("block id {v} out of range")))?,
            );
        }
    } else {
        out.extend(obj.extract::<Vec<u32>>()?);
    }
    Ok(())
}

fn blob<'py>(py: Python<'py>, keys: &[Key]) -> Bound<'py, PyBytes> {
    let mut v = Vec::with_capacity(keys.len() * 16);
    for k in keys {
        v.extend_from_slice(&k.to_be_bytes());
    }
    PyBytes::new(py, &v)
}

/// Run `f` detached from the interpreter when the batch is big enough to be worth it.
fn work<T: Send, F: Send + FnOnce() -> T>(py: Python<'_>, size: usize, f: F) -> T {
    if size >= DETACH_AT {
        py.detach(f)
    } else {
        f()
    }
}

/// Chained block hashes (see `kv_v2::hash`).
#[pyclass(module = "pyagent_compile._native", name = "BlockHasher", frozen)]
struct PyHasher {
    inner: BlockHasher,
}

type MmArg = Vec<(String, u64, u64)>;

fn extra(lora: Option<(String, String)>, cache_salt: Option<String>, mm: Option<MmArg>) -> Extra {
    Extra {
        lora,
        cache_salt,
        mm: mm
            .unwrap_or_default()
            .into_iter()
            .map(|(identifier, offset, length)| MmFeature {
                identifier,
                offset,
                length,
            })
            .collect(),
    }
}

fn digest_arg(parent: Option<&[u8]>) -> PyResult<Option<Digest>> {
    parent
        .map(|p| {
            p.try_into()
                .map_err(|_| PyValueError::new_err("a parent digest is 32 bytes"))
        })
        .transpose()
}

#[pymethods]
impl PyHasher {
    #[new]
    #[pyo3(signature = (block_size, mode = "xxh3", seed = "vllm-none-hash"))]
    fn new(block_size: usize, mode: &str, seed: &str) -> PyResult<Self> {
        let m = HashMode::parse(mode).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown hash mode {mode:?}: use xxh3, blake3 or sha256_cbor"
            ))
        })?;
        if block_size == 0 {
            return Err(PyValueError::new_err("block_size must be > 0"));
        }
        Ok(Self {
            inner: BlockHasher::new(m, block_size, seed),
        })
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode().name()
    }

    #[getter]
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }

    #[getter]
    fn none_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.none_hash())
    }

    /// Full 32-byte digests of every full block (vLLM's `BlockHash` bytes in sha256_cbor mode).
    #[pyo3(signature = (tokens, parent = None, first_token = 0, lora = None, cache_salt = None, mm = None))]
    #[allow(clippy::too_many_arguments)]
    fn hash_digests<'py>(
        &self,
        py: Python<'py>,
        tokens: Vec<u32>,
        parent: Option<&[u8]>,
        first_token: u64,
        lora: Option<(String, String)>,
        cache_salt: Option<String>,
        mm: Option<MmArg>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let p = digest_arg(parent)?;
        let ex = extra(lora, cache_salt, mm);
        let mut out = Vec::new();
        work(py, tokens.len(), || {
            self.inner
                .hash_blocks(&tokens, p.as_ref(), first_token, &ex, &mut out)
        });
        Ok(out.iter().map(|d| PyBytes::new(py, d)).collect())
    }

    /// Pool keys of every full block as one blob (16 bytes each), and the last block's digest
    /// (the parent to continue the chain with), or None when there is no full block.
    #[pyo3(signature = (tokens, parent = None, first_token = 0, lora = None, cache_salt = None, mm = None))]
    #[allow(clippy::too_many_arguments)]
    fn hash_keys<'py>(
        &self,
        py: Python<'py>,
        tokens: Vec<u32>,
        parent: Option<&[u8]>,
        first_token: u64,
        lora: Option<(String, String)>,
        cache_salt: Option<String>,
        mm: Option<MmArg>,
    ) -> PyResult<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> {
        let p = digest_arg(parent)?;
        let ex = extra(lora, cache_salt, mm);
        let mut out = Vec::new();
        work(py, tokens.len(), || {
            self.inner
                .hash_blocks(&tokens, p.as_ref(), first_token, &ex, &mut out)
        });
        let keys: Vec<Key> = out.iter().map(kv_v2::hash::key_of).collect();
        Ok((blob(py, &keys), out.last().map(|d| PyBytes::new(py, d))))
    }

    /// The pool key of a 32-byte digest (its last 16 bytes).
    #[staticmethod]
    fn key_of<'py>(py: Python<'py>, digest: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let d: Digest = digest
            .try_into()
            .map_err(|_| PyValueError::new_err("a digest is 32 bytes"))?;
        Ok(blob(py, &[kv_v2::hash::key_of(&d)]))
    }
}

/// Gauges and counters of a pool.
#[pyclass(module = "pyagent_compile._native", name = "KvStats", frozen, get_all)]
struct PyStats {
    num_blocks: usize,
    free: usize,
    used: usize,
    evictable: usize,
    pinned: usize,
    cached: usize,
    query_blocks: u64,
    hit_blocks: u64,
    query_tokens: u64,
    hit_tokens: u64,
    evictions: u64,
    host_cached: usize,
    host_hits: u64,
    metadata_bytes_per_block: f64,
}

#[pymethods]
impl PyStats {
    /// Hit rate over admitted queries, in blocks.
    #[getter]
    fn hit_rate(&self) -> f64 {
        if self.query_blocks == 0 {
            0.0
        } else {
            self.hit_blocks as f64 / self.query_blocks as f64
        }
    }
}

/// One KV event: `kind` is "stored", "removed" or "cleared".
#[pyclass(module = "pyagent_compile._native", name = "KvEvent", frozen, get_all)]
struct PyEvent {
    id: u64,
    kind: &'static str,
    keys: Py<PyBytes>,
    parent: Option<Py<PyBytes>>,
    block_ids: Vec<u32>,
    medium: &'static str,
}

fn medium(m: Medium) -> &'static str {
    match m {
        Medium::Device => "GPU",
        Medium::Host => "CPU",
    }
}

/// The KV_v2 block manager (see `kv_v2::pool`), with request-level block tables.
#[pyclass(module = "pyagent_compile._native", name = "KvPool")]
struct PyPool {
    inner: Pool,
    reqs: Requests,
    /// Reused per call by the request API: parsed keys and the evicted keys it discards, so a
    /// decode step allocates nothing.
    key_buf: Vec<Key>,
    ev_buf: Vec<Key>,
    /// Reused by the list API (`allocate_ids`, `register`): block ids in and out.
    ids_buf: Vec<u32>,
    out_buf: Vec<u32>,
}

#[pymethods]
impl PyPool {
    #[new]
    #[pyo3(signature = (num_blocks, block_size, *, policy = "lru", ttl = 0, dedup = false, reserve = 0, events = false, host_blocks = 0, hash_mode = "xxh3"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        num_blocks: usize,
        block_size: usize,
        policy: &str,
        ttl: u32,
        dedup: bool,
        reserve: usize,
        events: bool,
        host_blocks: usize,
        hash_mode: &str,
    ) -> PyResult<Self> {
        let policy = match policy {
            "lru" => Policy::Lru,
            "lfu" => Policy::Lfu,
            "priority" => Policy::Priority,
            "ttl" if ttl > 0 => Policy::Ttl { ttl },
            "ttl" => return Err(PyValueError::new_err("policy 'ttl' needs ttl > 0")),
            p => {
                return Err(PyValueError::new_err(format!(
                    "unknown policy {p:?}: use lru, lfu, priority or ttl"
                )))
            }
        };
        let mode = HashMode::parse(hash_mode)
            .ok_or_else(|| PyValueError::new_err(format!("unknown hash mode {hash_mode:?}")))?;
        let cfg = Config {
            num_blocks,
            block_size,
            policy,
            dup: if dedup {
                DupPolicy::Dedup
            } else {
                DupPolicy::KeepAll
            },
            reserve,
            events,
            host_blocks,
            hash_tag: mode.tag(),
        };
        Ok(Self {
            inner: Pool::new(cfg).map_err(err)?,
            reqs: Requests::for_pool(num_blocks),
            key_buf: Vec::new(),
            ev_buf: Vec::new(),
            ids_buf: Vec::new(),
            out_buf: Vec::new(),
        })
    }

    // ---- request-level API: tables stay in Rust, calls carry only ids and key blobs -----

    /// Admit request `rid` whose full blocks have `keys`: take its cached prefix (at most
    /// `max_hit` blocks, default all keys) and allocate up to `total_blocks`. Returns the
    /// number of hit blocks, or None (nothing changed) when it does not fit.
    #[pyo3(signature = (rid, keys, total_blocks, max_hit = None, token_ids = None))]
    fn req_admit(
        &mut self,
        py: Python<'_>,
        rid: u64,
        keys: &[u8],
        total_blocks: usize,
        max_hit: Option<usize>,
        token_ids: Option<Vec<u32>>,
    ) -> PyResult<Option<usize>> {
        let tokens = token_ids.unwrap_or_default();
        let mut k = std::mem::take(&mut self.key_buf);
        keys_into(keys, &mut k)?;
        self.ev_buf.clear();
        let (inner, reqs, ev) = (&mut self.inner, &mut self.reqs, &mut self.ev_buf);
        let max_hit = max_hit.unwrap_or(k.len());
        let r = work(py, total_blocks, || {
            reqs.admit_tokens(inner, rid, &k, &tokens, total_blocks, max_hit, ev)
        })
        .map_err(err);
        self.key_buf = k;
        r
    }

    /// Append keys of newly full blocks and grow the table to `total_blocks` (running
    /// requests may use the reserve). Returns False when the blocks do not fit (keys kept).
    #[pyo3(signature = (rid, total_blocks, keys = None))]
    fn req_grow(&mut self, rid: u64, total_blocks: usize, keys: Option<&[u8]>) -> PyResult<bool> {
        let mut k = std::mem::take(&mut self.key_buf);
        keys_into(keys.unwrap_or(&[]), &mut k)?;
        self.ev_buf.clear();
        let r = self
            .reqs
            .grow(&mut self.inner, rid, &k, total_blocks, &mut self.ev_buf)
            .map_err(err);
        self.key_buf = k;
        r
    }

    /// Cache the request's full blocks up to `computed` blocks (default: every block with a
    /// key). Returns how many were registered.
    #[pyo3(signature = (rid, computed = None))]
    fn req_commit(&mut self, py: Python<'_>, rid: u64, computed: Option<usize>) -> PyResult<usize> {
        let (inner, reqs) = (&mut self.inner, &mut self.reqs);
        work(py, 0, || {
            reqs.commit(inner, rid, computed.unwrap_or(usize::MAX))
        })
        .map_err(err)
    }

    /// One scheduler step: append keys of newly full blocks, grow to `total_blocks` (the
    /// reserve may be used), cache the full blocks. None when the blocks do not fit; else the
    /// number newly cached.
    #[pyo3(signature = (rid, total_blocks, keys = None, token_ids = None))]
    fn req_step(
        &mut self,
        rid: u64,
        total_blocks: usize,
        keys: Option<&[u8]>,
        token_ids: Option<Vec<u32>>,
    ) -> PyResult<Option<usize>> {
        let tokens = token_ids.unwrap_or_default();
        let mut k = std::mem::take(&mut self.key_buf);
        keys_into(keys.unwrap_or(&[]), &mut k)?;
        self.ev_buf.clear();
        let r = self
            .reqs
            .step_tokens(
                &mut self.inner,
                rid,
                &k,
                &tokens,
                total_blocks,
                &mut self.ev_buf,
            )
            .map_err(err);
        self.key_buf = k;
        r
    }

    /// Several requests' scheduler steps in one call, applied in order: each item is
    /// `(rid, total_blocks, keys)` as for [`req_step`] (`keys` may be empty). Returns one
    /// result per item (None: that request's blocks did not fit). A scheduler that steps
    /// every running request per iteration can make one crossing instead of one per request.
    /// An error (unknown request, bad blob) stops the batch; earlier items stay applied.
    fn req_step_many(
        &mut self,
        steps: Vec<(u64, usize, Bound<'_, PyBytes>)>,
    ) -> PyResult<Vec<Option<usize>>> {
        let mut out = Vec::with_capacity(steps.len());
        let mut k = std::mem::take(&mut self.key_buf);
        for (rid, total, keys) in &steps {
            if let Err(e) = keys_into(keys.as_bytes(), &mut k) {
                self.key_buf = k;
                return Err(e);
            }
            self.ev_buf.clear();
            match self
                .reqs
                .step_tokens(&mut self.inner, *rid, &k, &[], *total, &mut self.ev_buf)
            {
                Ok(r) => out.push(r),
                Err(e) => {
                    self.key_buf = k;
                    return Err(err(e));
                }
            }
        }
        self.key_buf = k;
        Ok(out)
    }

    /// Free the request's blocks (tail first) and forget it. Returns the number of blocks.
    fn req_free(&mut self, py: Python<'_>, rid: u64) -> PyResult<usize> {
        let (inner, reqs) = (&mut self.inner, &mut self.reqs);
        if reqs.num_blocks(rid).map_err(err)? >= DETACH_AT {
            py.detach(|| reqs.free(inner, rid)).map_err(err)
        } else {
            reqs.free(inner, rid).map_err(err)
        }
    }

    /// A child request sharing every block of `parent` (an agent branching).
    fn req_fork(&mut self, parent: u64, child: u64) -> PyResult<()> {
        self.reqs.fork(&mut self.inner, parent, child).map_err(err)
    }

    /// The request's block table.
    fn req_table(&self, rid: u64) -> PyResult<Vec<u32>> {
        Ok(self.reqs.get(rid).map_err(err)?.blocks.to_vec())
    }

    /// The request's block table as packed little-endian u32 (for `array('I')` or numpy).
    fn req_table_bytes<'py>(&self, py: Python<'py>, rid: u64) -> PyResult<Bound<'py, PyBytes>> {
        let t = self.reqs.get(rid).map_err(err)?.blocks;
        let mut v = Vec::with_capacity(t.len() * 4);
        for b in t {
            v.extend_from_slice(&b.to_le_bytes());
        }
        Ok(PyBytes::new(py, &v))
    }

    /// Number of requests holding tables.
    fn num_requests(&self) -> usize {
        self.reqs.len()
    }

    /// Longest cached prefix of `keys`, in blocks. No side effects (a router's estimate).
    fn lookup(&self, keys: &[u8]) -> PyResult<usize> {
        let k = keys_from(keys)?;
        Ok(self.inner.lookup(&k, None))
    }

    /// The cached prefix's block ids. No side effects.
    fn lookup_blocks(&self, keys: &[u8]) -> PyResult<Vec<u32>> {
        let k = keys_from(keys)?;
        let mut out = Vec::new();
        self.inner.lookup(&k, Some(&mut out));
        Ok(out)
    }

    /// Admission lookup: references the hit blocks and counts the query.
    fn acquire(&mut self, keys: &[u8]) -> PyResult<Vec<u32>> {
        let k = keys_from(keys)?;
        let mut out = Vec::new();
        self.inner.acquire(&k, &mut out);
        Ok(out)
    }

    /// Count a query done as separate lookup and touch calls.
    fn count_query(&mut self, queried: usize, hit: usize) {
        self.inner.count_query(queried, hit);
    }

    fn touch(&mut self, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        ids_into(ids, &mut self.ids_buf)?;
        self.inner.touch(&self.ids_buf).map_err(err)
    }

    /// Allocate `n` blocks (all or nothing). Returns the ids and the evicted keys blob.
    #[pyo3(signature = (n, use_reserve = false))]
    fn allocate<'py>(
        &mut self,
        py: Python<'py>,
        n: usize,
        use_reserve: bool,
    ) -> PyResult<(Vec<u32>, Bound<'py, PyBytes>)> {
        let (mut ids, mut ev) = (Vec::new(), Vec::new());
        let inner = &mut self.inner;
        work(py, n, || inner.allocate(n, use_reserve, &mut ids, &mut ev)).map_err(err)?;
        Ok((ids, blob(py, &ev)))
    }

    /// Allocate `n` blocks (all or nothing) and return only their ids, as vLLM's
    /// `get_new_blocks` does: for callers that do not want the evicted keys (they still go
    /// into events when the pool records them).
    #[pyo3(signature = (n, use_reserve = false))]
    fn allocate_ids<'py>(
        &mut self,
        py: Python<'py>,
        n: usize,
        use_reserve: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        self.ev_buf.clear();
        self.out_buf.clear();
        let (inner, ids, ev) = (&mut self.inner, &mut self.out_buf, &mut self.ev_buf);
        work(py, n, || inner.allocate(n, use_reserve, ids, ev)).map_err(err)?;
        PyList::new(py, &self.out_buf)
    }

    /// One-call admission: reference the cached prefix of `keys`, then allocate the rest of
    /// the request's `total_blocks`. All or nothing: when they do not fit, nothing changes and `None` is returned.
    /// Returns `(table, num_hit_blocks, evicted_keys)`.
    #[pyo3(signature = (keys, total_blocks, use_reserve = false))]
    #[allow(clippy::type_complexity)]
    fn admit<'py>(
        &mut self,
        py: Python<'py>,
        keys: &[u8],
        total_blocks: usize,
        use_reserve: bool,
    ) -> PyResult<Option<(Vec<u32>, usize, Bound<'py, PyBytes>)>> {
        let k = keys_from(keys)?;
        let inner = &mut self.inner;
        let r = work(py, total_blocks, || {
            let mut table = Vec::with_capacity(total_blocks);
            let mut ev = Vec::new();
            inner
                .admit(&k, total_blocks, use_reserve, &mut table, &mut ev)
                .map(|hits| hits.map(|h| (table, h, ev)))
        })
        .map_err(err)?;
        Ok(r.map(|(t, h, ev)| (t, h, blob(py, &ev))))
    }

    /// Cache full blocks under `keys`. Returns the resulting table entries (with `dedup`, a
    /// duplicate is replaced by the cached block).
    #[pyo3(signature = (ids, keys, parent = None, token_ids = None))]
    fn register<'py>(
        &mut self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        keys: &[u8],
        parent: Option<&[u8]>,
        token_ids: Option<Vec<u32>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let tokens = token_ids.unwrap_or_default();
        let parent = parent.map(one_key).transpose()?;
        ids_into(ids, &mut self.ids_buf)?;
        keys_into(keys, &mut self.key_buf)?;
        self.out_buf.clear();
        let (inner, ids, k, out) = (
            &mut self.inner,
            &self.ids_buf,
            &self.key_buf,
            &mut self.out_buf,
        );
        work(py, ids.len(), || {
            inner.register_tokens(ids, k, parent, Some(out), &tokens)
        })
        .map_err(err)?;
        PyList::new(py, &self.out_buf)
    }

    #[pyo3(signature = (block, key, parent = None))]
    fn register_partial(&mut self, block: u32, key: &[u8], parent: Option<&[u8]>) -> PyResult<()> {
        let parent = parent.map(one_key).transpose()?;
        self.inner
            .register_partial(block, one_key(key)?, parent)
            .map_err(err)
    }

    /// Release blocks in eviction-priority order (first evicted first).
    fn free(&mut self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        ids_into(ids, &mut self.ids_buf)?;
        let (inner, ids) = (&mut self.inner, &self.ids_buf);
        work(py, ids.len(), || inner.free(ids)).map_err(err)
    }

    /// Release a request's block table (tail blocks are evicted first, as in vLLM).
    ///
    /// The table is read in place into a reused buffer (`ids_into`), not extracted as a new
    /// `Vec` through the sequence protocol: with tables of hundreds of blocks, that extraction
    /// was most of the call (benchmarks/kv_v2.py, row L4).
    fn free_request(&mut self, py: Python<'_>, table: &Bound<'_, PyAny>) -> PyResult<()> {
        ids_into(table, &mut self.ids_buf)?;
        let (inner, table) = (&mut self.inner, &self.ids_buf);
        work(py, table.len(), || inner.free_request(table)).map_err(err)
    }

    /// Drop these blocks' hashes; returns the removed keys blob.
    fn evict<'py>(&mut self, py: Python<'py>, ids: Vec<u32>) -> PyResult<Bound<'py, PyBytes>> {
        let removed = self.inner.evict(&ids).map_err(err)?;
        Ok(blob(py, &removed))
    }

    fn pin(&mut self, ids: Vec<u32>) -> PyResult<()> {
        self.inner.pin(&ids).map_err(err)
    }

    fn unpin(&mut self, ids: Vec<u32>) -> PyResult<()> {
        self.inner.unpin(&ids).map_err(err)
    }

    fn set_priority(&mut self, ids: Vec<u32>, priority: u8) -> PyResult<()> {
        self.inner.set_priority(&ids, priority).map_err(err)
    }

    fn set_time(&mut self, now: u32) {
        self.inner.set_time(now);
    }

    fn expire<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let removed = self.inner.expire();
        blob(py, &removed)
    }

    fn reset(&mut self) -> PyResult<()> {
        self.inner.reset().map_err(err)
    }

    fn fork(&mut self, table: Vec<u32>) -> PyResult<Vec<u32>> {
        self.inner.fork(&table).map_err(err)
    }

    fn is_writable(&self, block: u32) -> bool {
        self.inner.is_writable(block)
    }

    /// `(block, must_copy)`: a private block for this table slot.
    fn make_writable(&mut self, block: u32) -> PyResult<(u32, bool)> {
        self.inner
            .make_writable(block, &mut Vec::new())
            .map_err(err)
    }

    fn take_events(&mut self, py: Python<'_>) -> Vec<PyEvent> {
        self.inner
            .take_events()
            .into_iter()
            .map(|e| {
                let (kind, keys, parent, block_ids, m) = match e.kind {
                    EventKind::Stored {
                        keys,
                        parent,
                        block_ids,
                        medium: m,
                        ..
                    } => ("stored", keys, parent, block_ids, medium(m)),
                    EventKind::Removed { keys, medium: m } => {
                        ("removed", keys, None, Vec::new(), medium(m))
                    }
                    EventKind::Cleared => ("cleared", Vec::new(), None, Vec::new(), "GPU"),
                };
                PyEvent {
                    id: e.id,
                    kind,
                    keys: blob(py, &keys).unbind(),
                    parent: parent.map(|p| blob(py, &[p]).unbind()),
                    block_ids,
                    medium: m,
                }
            })
            .collect()
    }

    /// Drain the pending events as one vLLM `KVEventBatch` (msgpack, hashes in vLLM's int
    /// form), ready to publish to routers that consume vLLM's KV events. `ts` defaults to now.
    #[pyo3(
        signature = (ts = None, data_parallel_rank = None, group_idx = Some(0)),
        text_signature = "(self, /, ts=None, data_parallel_rank=None, group_idx=0)"
    )]
    fn take_events_vllm<'py>(
        &mut self,
        py: Python<'py>,
        ts: Option<f64>,
        data_parallel_rank: Option<i64>,
        group_idx: Option<u32>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ts = ts.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        let events = self.inner.take_events();
        let b = kv_v2::vllm_events::encode_batch(&events, ts, data_parallel_rank, group_idx)
            .map_err(err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// `(device_block, host_slot, key)` copies to make before the device blocks are reused.
    fn take_offloads<'py>(&mut self, py: Python<'py>) -> Vec<(u32, u32, Bound<'py, PyBytes>)> {
        self.inner
            .take_offloads()
            .into_iter()
            .map(|o| (o.block, o.slot, blob(py, &[o.key])))
            .collect()
    }

    #[pyo3(signature = (keys, start = 0))]
    fn lookup_host(&self, keys: &[u8], start: usize) -> PyResult<usize> {
        Ok(self.inner.lookup_host(&keys_from(keys)?, start))
    }

    /// Bring host-tier blocks back: `(host_slot, device_block)` copies to make.
    #[pyo3(signature = (keys, start = 0, parent = None))]
    fn load_from_host(
        &mut self,
        keys: &[u8],
        start: usize,
        parent: Option<&[u8]>,
    ) -> PyResult<Vec<(u32, u32)>> {
        let parent = parent.map(one_key).transpose()?;
        self.inner
            .load_from_host(&keys_from(keys)?, start, parent, &mut Vec::new())
            .map_err(err)
    }

    fn stats(&self) -> PyStats {
        let s = self.inner.stats();
        PyStats {
            num_blocks: s.num_blocks,
            free: s.free,
            used: s.used,
            evictable: s.evictable,
            pinned: s.pinned,
            cached: s.cached,
            query_blocks: s.query_blocks,
            hit_blocks: s.hit_blocks,
            query_tokens: s.query_tokens,
            hit_tokens: s.hit_tokens,
            evictions: s.evictions,
            host_cached: s.host_cached,
            host_hits: s.host_hits,
            metadata_bytes_per_block: s.metadata_bytes_per_block,
        }
    }

    /// Free block ids in eviction order (next to be allocated first).
    fn free_order(&self) -> Vec<u32> {
        self.inner.free_order()
    }

    fn ref_count(&self, block: u32) -> PyResult<u32> {
        self.inner.ref_count(block).map_err(err)
    }

    fn block_key<'py>(&self, py: Python<'py>, block: u32) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(self
            .inner
            .block_key(block)
            .map_err(err)?
            .map(|k| blob(py, &[k])))
    }

    /// Raise `KvCacheError` describing the first broken invariant, if any.
    fn check_invariants(&self) -> PyResult<()> {
        self.inner.check_invariants().map_err(KvCacheError::new_err)
    }

    /// Write the prefix index to `path` (atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| persist::save(inner, &path)).map_err(err)
    }

    /// Restore a prefix index written by `save` into this idle, empty pool. Returns the number
    /// of cached blocks; raises `KvCorruptIndexError` for a bad file (nothing is loaded).
    fn load(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        let inner = &mut self.inner;
        py.detach(|| persist::load(inner, &path)).map_err(err)
    }

    /// The index file's bytes (for callers that store it themselves).
    fn dumps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = persist::to_bytes(&self.inner).map_err(err)?;
        Ok(PyBytes::new(py, &b))
    }

    fn loads(&mut self, data: &[u8]) -> PyResult<usize> {
        persist::from_bytes(&mut self.inner, data).map_err(err)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NULL_BLOCK", kv_v2::NULL_BLOCK)?;
    m.add("KvCacheError", m.py().get_type::<KvCacheError>())?;
    m.add(
        "KvOutOfBlocksError",
        m.py().get_type::<KvOutOfBlocksError>(),
    )?;
    m.add(
        "KvCorruptIndexError",
        m.py().get_type::<KvCorruptIndexError>(),
    )?;
    m.add_class::<PyHasher>()?;
    m.add_class::<PyPool>()?;
    m.add_class::<PyStats>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<sign::PySigningKey>()?;
    Ok(())
}
