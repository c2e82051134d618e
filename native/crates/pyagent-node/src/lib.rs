//! The pyagent node daemon: a Raft group (openraft) over signed messages, holding the swarm's
//! shared truth (membership with keys, task ownership with fencing tokens, a small KV store).
//! See docs/node-daemon.md for the contract.

pub mod admission;
pub mod api;
pub mod append;
pub mod auth;
pub mod batching;
pub mod config;
pub mod http;
pub mod identity;
pub mod join;
pub mod kv;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod node;
pub mod process;
pub mod recovery;
pub mod scale;
pub mod shared;
pub mod sm;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod types;
pub mod work;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("pyagent.node.v1");
}

#[cfg(test)]
pub(crate) mod testutil;
