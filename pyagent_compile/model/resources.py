"""Derived figures of the model that several stages need: GPU memory, KV cache size, voters."""

from __future__ import annotations

from decimal import Decimal

from pyagent_compile.model.gpus import GPU_CATALOG
from pyagent_compile.model.quantity import parse_quantity
from pyagent_compile.model.spec import Pool, Swarm

GIB = 2**30


def gpu_memory_per_node(pool: Pool) -> Decimal | None:
    """Total GPU memory of one node of the pool; None without a GPU or with an unknown model."""
    gpu = pool.hardware.gpu
    if gpu is None or gpu.model not in GPU_CATALOG:
        return None
    return Decimal(GPU_CATALOG[gpu.model].memory_gib * GIB * gpu.count)


def kv_memory_of(pool: Pool) -> Decimal:
    """The memory the KV cache lives in: GPU memory on GPU pools, host memory otherwise."""
    gpu = gpu_memory_per_node(pool)
    return gpu if gpu is not None else parse_quantity(pool.hardware.memory)


def kv_bytes_per_block(swarm: Swarm) -> Decimal:
    kv = swarm.memory.kv
    return parse_quantity(kv.bytes_per_token) * kv.block_size


def kv_blocks_per_node(swarm: Swarm, pool: Pool) -> int:
    """KV_v2 blocks on each node of the pool, from whichever capacity form the spec uses."""
    capacity = swarm.memory.kv.capacity
    per_block = kv_bytes_per_block(swarm)
    if capacity.blocks is not None:
        return capacity.blocks
    if capacity.bytes is not None:
        return int(parse_quantity(capacity.bytes) / per_block) if per_block else 0
    assert capacity.gpu_fraction is not None
    return int(kv_memory_of(pool) * Decimal(str(capacity.gpu_fraction)) / per_block) if per_block else 0


def voter_count(swarm: Swarm) -> int:
    return sum(p.replicas for p in swarm.nodes.values() if "voter" in p.roles)
