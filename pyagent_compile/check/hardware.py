"""Hardware fit: known GPU models (PA302), cores that need GPU memory (PA303), and a KV
cache that fits the memory it lives in (PA304)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.model.gpus import GPU_CATALOG
from pyagent_compile.model.quantity import parse_quantity
from pyagent_compile.model.resources import (
    GIB,
    gpu_memory_per_node,
    kv_blocks_per_node,
    kv_bytes_per_block,
    kv_memory_of,
)
from pyagent_compile.suggest import did_you_mean


def _gib(value: Decimal) -> str:
    return f"{float(value) / GIB:.1f} GiB"


def check_hardware(ctx: CheckContext) -> list[Diagnostic]:
    return [*_gpu_models(ctx), *_core_gpu_needs(ctx), *_kv_capacity(ctx)]


def _gpu_models(ctx: CheckContext) -> Iterable[Diagnostic]:
    for name, pool in ctx.swarm.nodes.items():
        gpu = pool.hardware.gpu
        if gpu is not None and gpu.model not in GPU_CATALOG:
            yield ctx.problem(
                "PA302",
                ("nodes", name, "hardware", "gpu", "model"),
                f"unknown GPU model {gpu.model!r}",
                did_you_mean(gpu.model, GPU_CATALOG) or "`pyagent explain PA302` lists the catalog",
            )


def _core_gpu_needs(ctx: CheckContext) -> Iterable[Diagnostic]:
    for pool_name, pool in ctx.swarm.nodes.items():
        for index, core_name in enumerate(pool.cores):
            core = ctx.swarm.cores.get(core_name)
            if core is None or core.resources.gpu_memory is None:
                continue
            need = parse_quantity(core.resources.gpu_memory)
            path = ("nodes", pool_name, "cores", index)
            related = ((("cores", core_name, "resources", "gpuMemory"), "the core's need"),)
            if pool.hardware.gpu is None:
                yield ctx.problem(
                    "PA303",
                    path,
                    f"core {core_name!r} needs {_gib(need)} of GPU memory; pool {pool_name!r} has no GPU",
                    "add `hardware.gpu` or run the core on a GPU pool",
                    related=related,
                )
                continue
            have = gpu_memory_per_node(pool)
            if have is not None and need > have:
                yield ctx.problem(
                    "PA303",
                    path,
                    f"core {core_name!r} needs {_gib(need)} of GPU memory; a node of {pool_name!r} has {_gib(have)}",
                    "use a larger GPU or more GPUs per node",
                    related=related,
                )


def _kv_capacity(ctx: CheckContext) -> Iterable[Diagnostic]:
    capacity = ctx.swarm.memory.kv.capacity
    if capacity.gpu_fraction is not None:
        return  # a fraction always fits
    field = "blocks" if capacity.blocks is not None else "bytes"
    for pool_name, pool in ctx.swarm.nodes.items():
        size = kv_blocks_per_node(ctx.swarm, pool) * kv_bytes_per_block(ctx.swarm)
        room = kv_memory_of(pool)
        if size > room:
            where = "GPU memory" if pool.hardware.gpu is not None else "memory"
            yield ctx.problem(
                "PA304",
                ("memory", "kv", "capacity", field),
                f"the KV cache takes {_gib(size)} per node, above the {_gib(room)} of {where} of pool {pool_name!r}",
                "lower the capacity or use `gpuFraction`",
                related=((("nodes", pool_name, "hardware"), f"pool {pool_name!r}"),),
            )
