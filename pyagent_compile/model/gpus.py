"""The catalog of GPU models pyagent can schedule on.

`label` is the value of the `nvidia.com/gpu.product` node label that NVIDIA's GPU
feature discovery sets, so pools land on the right hardware; `resource` is the extended
resource the device plugin advertises.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    memory_gib: int
    label: str
    resource: str = "nvidia.com/gpu"
    label_key: str = "nvidia.com/gpu.product"


GPU_CATALOG: dict[str, GpuModel] = {
    m.name: m
    for m in (
        GpuModel("B200-180GB", 180, "NVIDIA-B200"),
        GpuModel("H200-141GB", 141, "NVIDIA-H200"),
        GpuModel("H100-80GB", 80, "NVIDIA-H100-80GB-HBM3"),
        GpuModel("H100-NVL-94GB", 94, "NVIDIA-H100-NVL"),
        GpuModel("A100-80GB", 80, "NVIDIA-A100-SXM4-80GB"),
        GpuModel("A100-40GB", 40, "NVIDIA-A100-SXM4-40GB"),
        GpuModel("L40S-48GB", 48, "NVIDIA-L40S"),
        GpuModel("L4-24GB", 24, "NVIDIA-L4"),
        GpuModel("A10G-24GB", 24, "NVIDIA-A10G"),
        GpuModel("T4-16GB", 16, "Tesla-T4"),
        GpuModel("RTX-4090-24GB", 24, "NVIDIA-GeForce-RTX-4090"),
        GpuModel("MI300X-192GB", 192, "AMD-Instinct-MI300X", "amd.com/gpu", "amd.com/gpu.product-name"),
    )
}


def catalog_table() -> str:
    rows = [f"  {m.name:<16} {m.memory_gib:>4} GiB  {m.label_key}={m.label}" for m in GPU_CATALOG.values()]
    return "\n".join(rows)
