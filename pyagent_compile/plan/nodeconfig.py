"""The configuration file each node daemon reads (`/etc/pyagent/node.json`), one per pool.

The same document, with loopback addresses, drives the local target; its schema is the
daemon's contract (docs/node-config.md)."""

from __future__ import annotations

from typing import Any

from pyagent_compile.model.quantity import parse_duration
from pyagent_compile.model.resources import kv_blocks_per_node
from pyagent_compile.model.spec import Swarm

NODE_CONFIG_API = "pyagent.dev/node/v1alpha1"
DATA_DIR = "/var/lib/pyagent"
SOUL_DIR = "/etc/pyagent/soul"


def node_config(swarm: Swarm, pool_name: str, peer_dns: str) -> dict[str, Any]:
    pool = swarm.nodes[pool_name]
    kv = swarm.memory.kv
    sovereignty = swarm.sovereignty
    ports = swarm.mesh.ports
    discovery = "dns" if swarm.mesh.discovery == "auto" else swarm.mesh.discovery
    return {
        "apiVersion": NODE_CONFIG_API,
        "swarm": swarm.metadata.name,
        "pool": pool_name,
        "roles": sorted(pool.roles),
        "cores": sorted(pool.cores),
        "dataDir": DATA_DIR,
        "ports": {"mesh": ports.mesh, "raft": ports.raft, "grpc": ports.grpc, "metrics": ports.metrics},
        "discovery": {"mode": discovery, "dns": peer_dns, "neighbours": swarm.mesh.neighbours},
        "consensus": {
            "electionTimeoutMs": [swarm.consensus.election_timeout.min_ms, swarm.consensus.election_timeout.max_ms],
            "heartbeatMs": swarm.consensus.heartbeat_ms,
            "snapshotEveryEntries": swarm.consensus.snapshot.every_entries,
            "snapshotsKept": swarm.consensus.snapshot.keep,
        },
        "memory": {
            "kv": {
                "blockSize": kv.block_size,
                "blocks": kv_blocks_per_node(swarm, pool),
                "eviction": kv.eviction,
                "ttlSeconds": parse_duration(kv.ttl) if kv.ttl else None,
            },
            "decayHalfLifeSeconds": parse_duration(swarm.memory.decay_half_life),
        },
        "sovereignty": {
            "jurisdiction": pool.placement.jurisdiction,
            "ownerPublicKey": swarm.metadata.owner.public_key if swarm.metadata.owner else None,
            "soulKeyFile": f"{SOUL_DIR}/{sovereignty.soul.secret_ref.key}" if sovereignty.soul else None,
            "peerShare": sovereignty.peers.share,
            "trustedPeers": list(sovereignty.peers.trusted),
        },
    }
