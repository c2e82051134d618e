//! The size budget of one AppendEntries, shared by the two places that cut a batch: the log
//! reader that replication reads from (`storage`) and the transport that sends it (`net`).

use crate::types::Entry;

/// Bytes of commands one AppendEntries carries at most (etcd's `MaxSizePerMsg` is 1 MiB too); a
/// single larger entry still goes, alone. openraft reads up to `max_payload_entries` (300)
/// entries for one request and gives the call the heartbeat interval: a follower some tens of
/// MiB behind was sent the same batch, timed out, again and again, and never caught up
/// (tests/cluster.rs `leader_failover`, 40 MiB). The log reader applies the bound
/// (`storage::LogStore::limited_get_log_entries`); `append_entries` applies it again for any
/// other way in, answering `PartialSuccess` for the prefix it sent.
pub const APPEND_MAX_BYTES: usize = 1 << 20;

/// An entry's bytes on the wire, near enough to bound a batch (the commands and signatures
/// dominate; blank and membership entries are small).
pub fn entry_bytes(e: &Entry) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(batch) => batch
            .0
            .iter()
            .map(|c| c.command.len() + c.signature.len() + 32)
            .sum(),
        _ => 64,
    }
}

/// How many of `entries` go in one request: as many as fit in `max_bytes`, and at least one.
/// Also their bytes. Reads one entry past the cut at most.
pub fn append_prefix<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    max_bytes: usize,
) -> (usize, usize) {
    let (mut n, mut total) = (0, 0);
    for e in entries {
        let b = entry_bytes(e);
        if n > 0 && total + b > max_bytes {
            break;
        }
        n += 1;
        total += b;
    }
    (n, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::entry_with_command;

    /// An AppendEntries carries up to APPEND_MAX_BYTES of entries, and always at least one.
    #[test]
    fn append_batches_are_bounded_in_bytes() {
        let small: Vec<Entry> = (1..=300).map(|i| entry_with_command(i, 200)).collect();
        assert_eq!(append_prefix(&small, APPEND_MAX_BYTES).0, 300);
        let big: Vec<Entry> = (1..=40).map(|i| entry_with_command(i, 1 << 20)).collect();
        let (n, bytes) = append_prefix(&big, APPEND_MAX_BYTES);
        assert_eq!(n, 1, "one entry above the bound still goes, alone");
        assert!(bytes > 1 << 20);
        let mid: Vec<Entry> = (1..=40).map(|i| entry_with_command(i, 300 << 10)).collect();
        let (n, bytes) = append_prefix(&mid, APPEND_MAX_BYTES);
        assert_eq!(n, 3);
        assert!(bytes <= APPEND_MAX_BYTES);
        assert_eq!(append_prefix(std::iter::empty(), APPEND_MAX_BYTES), (0, 0));
    }
}
