//! The host tier: evicted device blocks offloaded under the same keys, and loaded back.

use super::*;

impl Pool {
    // ---- host tier --------------------------------------------------------------------------

    pub(super) fn offload(&mut self, block: u32, key: Key) {
        let Some(host) = self.host.as_deref_mut() else {
            return;
        };
        let mut slot = Vec::with_capacity(1);
        if host.acquire(&[key], &mut slot) == 1 {
            // Already on the host: refresh its recency only.
            host.release(&slot);
            return;
        }
        slot.clear();
        let mut dropped = Vec::new();
        if host.allocate(1, true, &mut slot, &mut dropped).is_err() {
            return;
        }
        let s = slot[0];
        host.index_insert(s, key);
        host.release(&[s]);
        self.offloads.push(Offload {
            block,
            slot: s,
            key,
        });
        if !dropped.is_empty() {
            self.emit(EventKind::Removed {
                keys: dropped,
                medium: Medium::Host,
            });
        }
        self.emit(EventKind::Stored {
            keys: vec![key],
            parent: None,
            block_ids: vec![s],
            medium: Medium::Host,
            tokens: Vec::new(),
            block_size: self.cfg.block_size as u32,
        });
    }

    /// Offloads produced since the last call: copy each device block to its host slot before
    /// writing into the block.
    pub fn take_offloads(&mut self) -> Vec<Offload> {
        std::mem::take(&mut self.offloads)
    }

    /// How many of `keys`, after the first `start`, are consecutively cached on the host.
    pub fn lookup_host(&self, keys: &[Key], start: usize) -> usize {
        let Some(host) = self.host.as_deref() else {
            return 0;
        };
        host.lookup(keys.get(start..).unwrap_or(&[]), None)
    }

    /// Load blocks back from the host: for the keys after `start` that the host holds
    /// consecutively, allocate device blocks, register them under the same keys and return
    /// `(host_slot, device_block)` pairs to copy. The device blocks are owned by the caller.
    pub fn load_from_host(
        &mut self,
        keys: &[Key],
        start: usize,
        parent: Option<Key>,
        evicted: &mut Vec<Key>,
    ) -> Result<Vec<(u32, BlockId)>> {
        let rest = keys.get(start..).unwrap_or(&[]);
        let mut slots = Vec::new();
        let n = match self.host.as_deref() {
            Some(h) => h.lookup(rest, Some(&mut slots)),
            None => 0,
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(n);
        self.allocate(n, false, &mut ids, evicted)?;
        self.register(&ids, &rest[..n], parent, None)?;
        if let Some(h) = self.host.as_deref_mut() {
            h.stats.host_hits += n as u64;
        }
        self.stats.host_hits += n as u64;
        Ok(slots.into_iter().zip(ids).collect())
    }
}
