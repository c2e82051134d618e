//! Chained block hashes.
//!
//! A block's hash covers its parent's hash, its tokens and its extra keys, so equal hashes mean
//! equal prefixes. Three modes:
//!
//! * [`HashMode::Xxh3`]: xxh3-128, the fast default. Requests are namespaced: the LoRA adapter
//!   and cache salt are hashed into the root of every chain, so two namespaces never share a
//!   block, not even the first one.
//! * [`HashMode::Blake3`]: the same layout with blake3, for callers who need collision
//!   resistance against adversarial prompts.
//! * [`HashMode::VllmSha256Cbor`]: byte-for-byte vLLM's `sha256_cbor` chaining
//!   (`sha256(cbor2.dumps((parent, tuple(tokens), extra_keys), canonical=True))`, the first
//!   parent being `NONE_HASH = sha256_cbor(seed)`), so routers that consume vLLM's KV events can
//!   consume ours.
//!
//! The pool indexes a [`Key`]: the last 16 bytes of the digest, big-endian. Its low 64 bits are
//! exactly vLLM's integer form of a block hash (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES`).

use sha2::{Digest as _, Sha256};

/// A full 32-byte block digest (xxh3 fills only the last 16 bytes).
pub type Digest = [u8; 32];
/// The 128-bit key the pool indexes blocks by.
pub type Key = u128;

/// vLLM's default seed for `NONE_HASH` with cryptographic hash functions.
pub const VLLM_DEFAULT_SEED: &str = "vllm-none-hash";

/// The index key of a digest: its last 16 bytes, big-endian.
pub fn key_of(d: &Digest) -> Key {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[16..]);
    u128::from_be_bytes(b)
}

/// Which hash function chains the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashMode {
    Xxh3,
    Blake3,
    VllmSha256Cbor,
}

impl HashMode {
    /// Parse the names the Python API accepts.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "xxh3" => Some(Self::Xxh3),
            "blake3" => Some(Self::Blake3),
            "vllm" | "sha256_cbor" => Some(Self::VllmSha256Cbor),
            _ => None,
        }
    }
    /// The canonical name (inverse of [`HashMode::parse`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::Xxh3 => "xxh3",
            Self::Blake3 => "blake3",
            Self::VllmSha256Cbor => "sha256_cbor",
        }
    }
    /// Stable numeric tag used in persisted files.
    pub fn tag(self) -> u8 {
        match self {
            Self::Xxh3 => 1,
            Self::Blake3 => 2,
            Self::VllmSha256Cbor => 3,
        }
    }
}

/// A multimodal input placed in the token stream (vLLM's `mm_features`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmFeature {
    pub identifier: String,
    pub offset: u64,
    pub length: u64,
}

/// The extra keys of a request: its namespace (adapter, salt) and multimodal inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// LoRA adapter `(name, path)`; vLLM hashes both so a re-pointed name never reuses KV.
    pub lora: Option<(String, String)>,
    /// Cache salt: requests with different salts never share blocks.
    pub cache_salt: Option<String>,
    /// Multimodal inputs, sorted by offset.
    pub mm: Vec<MmFeature>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.lora.is_none() && self.cache_salt.is_none() && self.mm.is_empty()
    }
}

/// Computes chained block hashes for one configuration.
#[derive(Debug, Clone)]
pub struct BlockHasher {
    mode: HashMode,
    block_size: usize,
    none_hash: Digest,
}

impl BlockHasher {
    /// `seed` plays the role of vLLM's `PYTHONHASHSEED` (default [`VLLM_DEFAULT_SEED`]).
    pub fn new(mode: HashMode, block_size: usize, seed: &str) -> Self {
        let none_hash = match mode {
            HashMode::VllmSha256Cbor => {
                let mut buf = Vec::new();
                cbor_text(&mut buf, seed);
                Sha256::digest(&buf).into()
            }
            HashMode::Xxh3 | HashMode::Blake3 => {
                let mut d = [0u8; 32];
                let h = blake3::hash(&[b"kv_v2/none/".as_slice(), seed.as_bytes()].concat());
                d.copy_from_slice(h.as_bytes());
                d
            }
        };
        Self {
            mode,
            block_size,
            none_hash,
        }
    }

    pub fn mode(&self) -> HashMode {
        self.mode
    }
    pub fn block_size(&self) -> usize {
        self.block_size
    }
    /// The parent of a chain's first block.
    pub fn none_hash(&self) -> Digest {
        self.none_hash
    }

    /// Hash every full block of `tokens`, chaining from `parent` (`None`: a chain's start, in
    /// which case `tokens` starts at token 0 of the request). `first_token` is the absolute
    /// position of `tokens[0]` (it matters for multimodal offsets and the vLLM cache salt,
    /// which only the first block carries). A trailing partial block is not hashed.
    pub fn hash_blocks(
        &self,
        tokens: &[u32],
        parent: Option<&Digest>,
        first_token: u64,
        extra: &Extra,
        out: &mut Vec<Digest>,
    ) {
        let bs = self.block_size;
        let mut buf = Vec::with_capacity(64 + 5 * bs);
        let mut prev = match parent {
            Some(p) => *p,
            None => self.root(extra, &mut buf),
        };
        out.reserve(tokens.len() / bs);
        for (i, chunk) in tokens.chunks_exact(bs).enumerate() {
            let start = first_token.saturating_add((i * bs) as u64);
            prev = self.hash_one(&prev, chunk, start, extra, &mut buf);
            out.push(prev);
        }
    }

    /// Hash one block (full or partial) whose first token is at absolute position `start`.
    pub fn hash_one(
        &self,
        parent: &Digest,
        tokens: &[u32],
        start: u64,
        extra: &Extra,
        buf: &mut Vec<u8>,
    ) -> Digest {
        buf.clear();
        match self.mode {
            HashMode::VllmSha256Cbor => {
                cbor_vllm_block(buf, parent, tokens, start, extra);
                Sha256::digest(&buf[..]).into()
            }
            HashMode::Xxh3 | HashMode::Blake3 => {
                buf.extend_from_slice(parent);
                buf.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
                for t in tokens {
                    buf.extend_from_slice(&t.to_le_bytes());
                }
                // Only multimodal inputs are per block; the namespace is in the chain's root.
                let end = start.saturating_add(tokens.len() as u64);
                for f in mm_in_block(&extra.mm, start, end) {
                    buf.push(0xfe);
                    buf.extend_from_slice(&(f.identifier.len() as u32).to_le_bytes());
                    buf.extend_from_slice(f.identifier.as_bytes());
                    buf.extend_from_slice(&rel_offset(f.offset, start).to_le_bytes());
                }
                self.digest(buf)
            }
        }
    }

    /// The root of a chain: `NONE_HASH` in vLLM mode (it namespaces per block instead),
    /// otherwise `NONE_HASH` mixed with the adapter and salt.
    fn root(&self, extra: &Extra, buf: &mut Vec<u8>) -> Digest {
        if self.mode == HashMode::VllmSha256Cbor
            || (extra.lora.is_none() && extra.cache_salt.is_none())
        {
            return self.none_hash;
        }
        buf.clear();
        buf.extend_from_slice(b"kv_v2/ns");
        buf.extend_from_slice(&self.none_hash);
        for s in [
            extra.lora.as_ref().map(|l| l.0.as_str()),
            extra.lora.as_ref().map(|l| l.1.as_str()),
            extra.cache_salt.as_deref(),
        ] {
            // Length-prefixed, with presence marked, so ("ab","") and ("a","b") differ.
            match s {
                None => buf.push(0),
                Some(s) => {
                    buf.push(1);
                    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    buf.extend_from_slice(s.as_bytes());
                }
            }
        }
        self.digest(buf)
    }

    fn digest(&self, data: &[u8]) -> Digest {
        let mut d = [0u8; 32];
        match self.mode {
            HashMode::Xxh3 => {
                let h = xxhash_rust::xxh3::xxh3_128(data);
                d[16..].copy_from_slice(&h.to_be_bytes());
            }
            HashMode::Blake3 => d.copy_from_slice(blake3::hash(data).as_bytes()),
            HashMode::VllmSha256Cbor => d = Sha256::digest(data).into(),
        }
        d
    }
}

/// Multimodal inputs overlapping the token range `[start, end)`.
fn mm_in_block(mm: &[MmFeature], start: u64, end: u64) -> impl Iterator<Item = &MmFeature> {
    mm.iter()
        .filter(move |f| end > f.offset && start < f.offset.saturating_add(f.length))
}

/// An input's offset relative to the block start (negative when it began in an earlier block).
fn rel_offset(offset: u64, start: u64) -> i64 {
    (offset as i64).wrapping_sub(start as i64)
}

// --- canonical CBOR, just the subset vLLM's block tuples use ---------------------------------

fn cbor_head(buf: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        buf.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        buf.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        buf.push(m | 25);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        buf.push(m | 26);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        buf.push(m | 27);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn cbor_int(buf: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        cbor_head(buf, 0, v as u64);
    } else {
        cbor_head(buf, 1, !(v as u64)); // -1 - v without overflow at i64::MIN
    }
}

fn cbor_text(buf: &mut Vec<u8>, s: &str) {
    cbor_head(buf, 3, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// `cbor2.dumps((parent, tuple(tokens), extra_keys), canonical=True)` with vLLM's extra keys:
/// `("lora", name, path)`, then `("mm", identifier, offset - start)` per overlapping input,
/// then `("cache_salt", salt)` on the request's first block; `None` when there are none.
fn cbor_vllm_block(buf: &mut Vec<u8>, parent: &Digest, tokens: &[u32], start: u64, extra: &Extra) {
    cbor_head(buf, 4, 3);
    cbor_head(buf, 2, 32);
    buf.extend_from_slice(parent);
    cbor_head(buf, 4, tokens.len() as u64);
    for &t in tokens {
        cbor_head(buf, 0, u64::from(t));
    }
    let end = start.saturating_add(tokens.len() as u64);
    let mut keys: Vec<Vec<u8>> = Vec::new();
    if !extra.is_empty() {
        if let Some((name, path)) = &extra.lora {
            let mut k = Vec::new();
            cbor_head(&mut k, 4, 3);
            cbor_text(&mut k, "lora");
            cbor_text(&mut k, name);
            cbor_text(&mut k, path);
            keys.push(k);
        }
        for f in mm_in_block(&extra.mm, start, end) {
            let mut k = Vec::new();
            cbor_head(&mut k, 4, 3);
            cbor_text(&mut k, "mm");
            cbor_text(&mut k, &f.identifier);
            cbor_int(&mut k, rel_offset(f.offset, start));
            keys.push(k);
        }
        if let (0, Some(salt)) = (start, &extra.cache_salt) {
            if !salt.is_empty() {
                let mut k = Vec::new();
                cbor_head(&mut k, 4, 2);
                cbor_text(&mut k, "cache_salt");
                cbor_text(&mut k, salt);
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        buf.push(0xf6); // None
    } else {
        cbor_head(buf, 4, keys.len() as u64);
        for k in keys {
            buf.extend_from_slice(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(h: &BlockHasher, tokens: &[u32], extra: &Extra) -> Vec<Digest> {
        let mut out = Vec::new();
        h.hash_blocks(tokens, None, 0, extra, &mut out);
        out
    }

    #[test]
    fn cbor_heads_use_shortest_form() {
        let mut b = Vec::new();
        for n in [0u64, 23, 24, 255, 256, 65535, 65536] {
            cbor_head(&mut b, 0, n);
        }
        assert_eq!(
            b,
            [0, 23, 24, 24, 24, 255, 25, 1, 0, 25, 255, 255, 26, 0, 1, 0, 0]
        );
        let mut b = Vec::new();
        cbor_int(&mut b, -1);
        cbor_int(&mut b, -25);
        assert_eq!(b, [0x20, 0x38, 24]);
    }

    #[test]
    fn vllm_none_hash_is_sha256_of_cbor_seed() {
        let h = BlockHasher::new(HashMode::VllmSha256Cbor, 4, VLLM_DEFAULT_SEED);
        let mut cbor = vec![0x60 + 14];
        cbor.extend_from_slice(b"vllm-none-hash");
        let want: Digest = Sha256::digest(&cbor).into();
        assert_eq!(h.none_hash(), want);
    }

    #[test]
    fn chains_depend_on_every_earlier_block() {
        for mode in [HashMode::Xxh3, HashMode::Blake3, HashMode::VllmSha256Cbor] {
            let h = BlockHasher::new(mode, 4, "s");
            let a = hashes(&h, &[1, 2, 3, 4, 5, 6, 7, 8, 9], &Extra::default());
            let b = hashes(&h, &[1, 2, 3, 5, 5, 6, 7, 8], &Extra::default());
            assert_eq!(a.len(), 2, "the partial trailing block is not hashed");
            assert_ne!(a[0], b[0]);
            assert_ne!(a[1], b[1], "same tokens, different parent: {mode:?}");
            let mut resumed = Vec::new();
            h.hash_blocks(
                &[5, 6, 7, 8],
                Some(&a[0]),
                4,
                &Extra::default(),
                &mut resumed,
            );
            assert_eq!(resumed[0], a[1], "hashing can resume from a parent");
        }
    }

    #[test]
    fn namespaces_never_share_blocks() {
        for mode in [HashMode::Xxh3, HashMode::Blake3, HashMode::VllmSha256Cbor] {
            let h = BlockHasher::new(mode, 2, "s");
            let toks = [7, 7, 7, 7];
            let plain = hashes(&h, &toks, &Extra::default());
            let salted = |s: &str| {
                hashes(
                    &h,
                    &toks,
                    &Extra {
                        cache_salt: Some(s.into()),
                        ..Extra::default()
                    },
                )
            };
            let lora = |n: &str, p: &str| {
                hashes(
                    &h,
                    &toks,
                    &Extra {
                        lora: Some((n.into(), p.into())),
                        ..Extra::default()
                    },
                )
            };
            let all = [
                plain,
                salted("a"),
                salted("b"),
                lora("x", "p"),
                lora("x", "q"),
                lora("xp", ""),
            ];
            for i in 0..all.len() {
                for j in 0..all.len() {
                    if i != j {
                        assert_ne!(all[i][0], all[j][0], "{mode:?} {i} {j}");
                        assert_ne!(all[i][1], all[j][1], "{mode:?} {i} {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn multimodal_inputs_change_only_the_blocks_they_touch() {
        let h = BlockHasher::new(HashMode::Xxh3, 4, "s");
        let toks = [0u32; 12];
        let mm = |id: &str| Extra {
            mm: vec![MmFeature {
                identifier: id.into(),
                offset: 5,
                length: 2,
            }],
            ..Extra::default()
        };
        let a = hashes(&h, &toks, &mm("img-a"));
        let b = hashes(&h, &toks, &mm("img-b"));
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
    }
}
