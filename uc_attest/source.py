"""Read a Hugging Face style model directory without loading it whole.

A model directory holds ``config.json``, the weights as one ``model.safetensors``
or as shards listed in ``model.safetensors.index.json``, and other files
(tokenizer, pooling config...) that are carried along unchanged. Pickle weight
files are never opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .core.fsutil import open_regular
from .core.stfile import SafetensorsFile, TensorInfo
from .errors import InvalidInput, MalformedModel

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


#: A model directory's JSON files (config, tokenizer config) are kilobytes; larger is not one of them.
MAX_JSON_BYTES = 64 << 20


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """Load a JSON object from ``path`` (a regular file, checked on the opened descriptor: never a FIFO or device;
    a symlink is followed, as in a hub cache) or raise MalformedModel naming the file."""
    try:
        with open_regular(path, follow=True) as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise MalformedModel(f"{path}: {what} is missing", path=str(path)) from None
    except InvalidInput as exc:
        raise MalformedModel(f"{path}: {what}: {exc.message}", path=str(path)) from None
    if len(raw) > MAX_JSON_BYTES:
        raise MalformedModel(f"{path}: {what} is larger than {MAX_JSON_BYTES >> 20} MiB", path=str(path))
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedModel(f"{path}: {what} is not valid JSON: {exc}", path=str(path)) from None
    if not isinstance(obj, dict):
        raise MalformedModel(f"{path}: {what} must be a JSON object", path=str(path))
    return obj


def is_causal(config: dict[str, Any]) -> bool:
    """Whether config.json names a causal LM architecture (``*ForCausalLM``, ``*LMHeadModel``)."""
    archs = config.get("architectures") or []
    return isinstance(archs, list) and any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


@dataclass(frozen=True)
class SourceTensor:
    """One tensor of the model and the shard that holds it."""

    shard: str
    info: TensorInfo

    @property
    def name(self) -> str:
        return self.info.name


class ModelSource:
    """A validated model directory; tensors are read lazily from memory maps."""

    def __init__(self, root: Path, skip_files: tuple[str, ...] = ()) -> None:
        """``skip_files``: relative paths that are not part of the model (e.g. its signature)."""
        self.root = Path(root)
        if not self.root.exists():
            raise MalformedModel(f"{self.root}: no such model directory", path=str(self.root))
        if not self.root.is_dir():
            why = "not a directory (a model is a directory: config.json + safetensors)"
            raise MalformedModel(f"{self.root}: {why}", path=str(self.root))
        self.config = read_json_object(self.root / "config.json", "config.json")
        self.shards = self._find_shards()
        self._files: dict[str, SafetensorsFile] = {}
        self.tensors: list[SourceTensor] = []
        seen: dict[str, str] = {}
        for shard in self.shards:
            f = self._open(shard)
            for name in f.names:
                if name in seen:
                    raise MalformedModel(
                        f"{self.root}: tensor {name!r} is in both {seen[name]} and {shard}", tensor=name
                    )
                seen[name] = shard
                self.tensors.append(SourceTensor(shard, f.infos[name]))
        self._check_index(seen)
        skip = {*self.shards, INDEX_NAME, *skip_files}
        self.extra_files = sorted(
            str(p.relative_to(self.root).as_posix())
            for p in self.root.rglob("*")
            if p.is_file()
            and not p.is_symlink()
            and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
            and str(p.relative_to(self.root).as_posix()) not in skip
            and not p.name.endswith(PICKLE_SUFFIXES)
            and p.suffix != ".safetensors"
        )

    def _find_shards(self) -> list[str]:
        index = self.root / INDEX_NAME
        if index.exists():
            obj = read_json_object(index, INDEX_NAME)
            wm = obj.get("weight_map")
            if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
                raise MalformedModel(f"{index}: 'weight_map' must map tensor names to shard file names")
            shards = sorted(set(wm.values()))
            for s in shards:
                p = PurePosixPath(s)
                if p.name != s or not s.endswith(".safetensors"):
                    raise MalformedModel(
                        f"{index}: shard {s!r} must be a .safetensors file name in the model directory"
                    )
                if not (self.root / s).is_file():
                    raise MalformedModel(f"{index}: shard {s!r} is missing", shard=s)
            self._weight_map: dict[str, str] | None = wm
            return shards
        self._weight_map = None
        if (self.root / SINGLE_NAME).is_file():
            return [SINGLE_NAME]
        found = sorted(p.name for p in self.root.glob("*.safetensors"))
        if len(found) == 1:
            return found
        if len(found) > 1:
            raise MalformedModel(f"{self.root}: {len(found)} .safetensors files but no {INDEX_NAME}")
        pickles = sorted(p.name for p in self.root.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        if pickles:
            raise MalformedModel(
                f"{self.root}: only pickle weights ({', '.join(pickles)}); uc-attest never unpickles: "
                "convert the model to safetensors first",
                files=pickles,
            )
        raise MalformedModel(f"{self.root}: no model.safetensors or {INDEX_NAME}")

    def _check_index(self, seen: dict[str, str]) -> None:
        if self._weight_map is None:
            return
        for name, shard in sorted(self._weight_map.items()):
            if seen.get(name) != shard:
                where = f"is in {seen[name]}" if name in seen else "is in no shard"
                raise MalformedModel(
                    f"{self.root / INDEX_NAME}: tensor {name!r} listed in {shard} but {where}", tensor=name
                )
        for name in sorted(set(seen) - set(self._weight_map)):
            raise MalformedModel(
                f"{self.root / INDEX_NAME}: tensor {name!r} in {seen[name]} is not in weight_map", tensor=name
            )

    def _open(self, shard: str) -> SafetensorsFile:
        if shard not in self._files:
            self._files[shard] = SafetensorsFile(self.root / shard)
        return self._files[shard]

    def file(self, shard: str) -> SafetensorsFile:
        return self._open(shard)

    def by_shard(self) -> Iterator[tuple[str, list[SourceTensor]]]:
        """Shards in name order with their tensors in file order."""
        for shard in self.shards:
            yield shard, [t for t in self.tensors if t.shard == shard]

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
