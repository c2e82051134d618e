//! Output capture under a cap.

use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Default)]
pub(crate) struct Captured {
    pub data: Vec<u8>,
    pub truncated: bool,
}

/// Reads to EOF, keeping the first `cap` bytes and counting the rest as truncated: a flood
/// costs the daemon CPU to drain, never memory, and never blocks the writer.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    cap: usize,
    into: &mut Captured,
) {
    let Some(mut reader) = reader else { return };
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = cap.saturating_sub(into.data.len());
                if n > room {
                    into.truncated = true;
                }
                into.data.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}
