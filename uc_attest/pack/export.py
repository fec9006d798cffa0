"""Write the reconstruction of a pack as a standard safetensors model directory.

Each tensor's bytes in the output equal the bytes whose SHA-256 is in the
manifest, so ``sha256`` of a tensor's slice of the file can be checked with any tool.
Tensors are streamed block by block: memory stays bounded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..core.fsutil import atomic_output_dir
from ..core.stfile import encode_header
from ..errors import MalformedPack
from ..source import INDEX_NAME
from .layout import CONFIG_NAME, MANIFEST_NAME, QUANT_METHOD, QUANTIZATION_CONFIG
from .reader import Pack


def export_reconstruction(pack_dir: Path, out_dir: Path, *, force: bool = False) -> list[str]:
    """Reconstruct every tensor into ``out_dir``; returns the written shard names."""
    with Pack(Path(pack_dir)) as pack:
        if pack.unreadable:
            shard, why = min(pack.unreadable.items())
            raise MalformedPack(why, path=shard)
        by_shard: dict[str, list[str]] = {}
        for name in pack.iter_names():
            by_shard.setdefault(pack.tensors[name].shard, []).append(name)
        with atomic_output_dir(Path(out_dir), overwrite=force) as tmp:
            for shard, names in sorted(by_shard.items()):
                specs = [(n, pack.tensors[n].dtype, pack.tensors[n].shape) for n in names]
                with open(tmp / shard, "wb") as fh:
                    fh.write(encode_header(specs, {"format": "pt"}))
                    for n in names:
                        fh.writelines(pack.iter_bytes(n))
            if len(by_shard) > 1:
                wm = {n: s for s, names in by_shard.items() for n in names}
                index = {"metadata": {}, "weight_map": dict(sorted(wm.items()))}
                (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2))
            for p in sorted(Path(pack_dir).rglob("*")):
                rel = p.relative_to(pack_dir)
                if (
                    p.is_file()
                    and p.suffix != ".safetensors"
                    and p.name != MANIFEST_NAME
                    and not any(part.startswith(".") for part in rel.parts)
                ):
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    if rel.as_posix() == CONFIG_NAME:
                        (tmp / rel).write_bytes(_plain_config(p))
                    else:
                        shutil.copyfile(p, tmp / rel)
        return sorted(by_shard)


def _plain_config(path: Path) -> bytes:
    """config.json without uc-attest's quantization_config: the reconstruction is a plain model for any tool."""
    raw = path.read_bytes()
    try:
        cfg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw
    if not isinstance(cfg, dict) or cfg.get(QUANTIZATION_CONFIG, {}).get("quant_method") != QUANT_METHOD:
        return raw
    del cfg[QUANTIZATION_CONFIG]
    return (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()
