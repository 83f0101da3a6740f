"""Reading and checking a bundle directory (see bundle_format.py for its layout)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import bundle_format as fmt
from .errors import KerasTransformerError


class BundleError(KerasTransformerError, ValueError):
    """A bundle that cannot be used; the message names the file and what was wrong."""


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BundleConfig:
    path: Path
    values: dict  # the parsed config.json

    @property
    def model(self) -> dict:
        """TransformerConfig fields: encoder_layers, decoder_layers, num_heads, hidden_dim, ..."""
        return self.values["model"]

    @property
    def decoder_layers(self) -> int:
        """The decoder's depth: how many self-attention caches and cross keys/values a step carries
        (bundles exported before the depths could differ have `num_layers` only)."""
        return self.model.get("decoder_layers", self.model["num_layers"])

    @property
    def shortlist(self) -> dict | None:
        """config.json's shortlist record (serve/shortlist.py), or None for a bundle without one."""
        return self.values.get("shortlist")

    @property
    def shortlist_operands(self) -> list[str]:
        """A shortlist bundle's per-batch operands (candidates.onnx's outputs, decoder.onnx's inputs); else []."""
        return list((self.shortlist or {}).get("operands", []))

    @property
    def num_heads(self) -> int:
        return self.model["num_heads"]

    @property
    def head_dim(self) -> int:
        return self.model["hidden_dim"] // self.model["num_heads"]

    @property
    def max_source_length(self) -> int:
        return self.model["max_source_length"]

    @property
    def max_target_length(self) -> int:
        return self.model["max_target_length"]

    def file(self, name) -> Path:
        return self.path / name


def read_bundle_config(path, verify_checksums: bool = True) -> BundleConfig:
    """Parses `path/config.json` and checks the format version and every file's sha256."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: expected a bundle directory (from `keras-transformer export`), "
                          f"got {'a file' if path.exists() else 'nothing'}")
    config_path = path / fmt.CONFIG_FILE
    if not config_path.is_file():
        raise BundleError(f"{path}: not a bundle (no {fmt.CONFIG_FILE})")
    try:
        values = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{config_path}: expected JSON, got a parse error ({error})") from None
    version = values.get("format_version") if isinstance(values, dict) else None
    if version != fmt.FORMAT_VERSION:
        raise BundleError(f"{config_path}: expected bundle format_version {fmt.FORMAT_VERSION}, got {version!r}")
    files = values.get("files")
    if not isinstance(files, dict) or not isinstance(values.get("model"), dict):
        raise BundleError(f"{config_path}: expected 'files' and 'model' objects")
    required = [fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.SOURCE_TOKENIZER_FILE, fmt.TARGET_TOKENIZER_FILE]
    for name in required + ([fmt.SHORTLIST_FILE, fmt.CANDIDATES_FILE] if values.get("shortlist") else []):
        if name not in files:
            raise BundleError(f"{config_path}: 'files' lacks {name}")
    _check_special_ids_and_graphs(config_path, values)
    for name, expected in files.items():
        file_path = path / name
        if not file_path.is_file():
            raise BundleError(f"{file_path}: missing (listed in {fmt.CONFIG_FILE})")
        if verify_checksums and sha256_of(file_path) != expected:
            raise BundleError(f"{file_path}: sha256 mismatch (expected {expected[:12]}…, got "
                              f"{sha256_of(file_path)[:12]}…): the file is truncated or was changed")
    return BundleConfig(path, values)


def _check_special_ids_and_graphs(config_path, values: dict) -> None:
    """The special ids and graph I/O names config.json declares must be the ones this runtime feeds."""
    if values.get("special_ids") != fmt.SPECIAL_IDS:
        raise BundleError(f"{config_path}: special_ids: expected {fmt.SPECIAL_IDS} (this runtime's), "
                          f"got {values.get('special_ids')!r}")
    field = "decoder_layers" if "decoder_layers" in values["model"] else "num_layers"
    num_layers = values["model"].get(field)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise BundleError(f"{config_path}: model.{field}: expected a positive integer, got {num_layers!r}")
    graphs = values.get("graphs") if isinstance(values.get("graphs"), dict) else {}
    operands = _shortlist_operands(config_path, values)
    checked = [("encoder", fmt.encoder_io_names), ("decoder", lambda layers: fmt.decoder_io_names(layers, operands))]
    if values.get("shortlist"):
        checked.append(("candidates", lambda _: fmt.candidates_io_names(operands)))
    for graph, io_names in checked:
        expected_inputs, expected_outputs = io_names(num_layers)
        declared = graphs.get(graph) if isinstance(graphs.get(graph), dict) else {}
        for side, expected in (("inputs", expected_inputs), ("outputs", expected_outputs)):
            if declared.get(side) != expected:
                raise BundleError(f"{config_path}: graphs.{graph}.{side}: expected {expected} for "
                                  f"{num_layers} decoder layers, got {declared.get(side)!r}")


def check_graph_io(path, session, num_layers: int, io_names) -> None:
    """A loaded onnxruntime session's input and output names must be `io_names(num_layers)`, in order."""
    expected_inputs, expected_outputs = io_names(num_layers)
    got_inputs = [i.name for i in session.get_inputs()]
    got_outputs = [o.name for o in session.get_outputs()]
    if got_inputs != expected_inputs or got_outputs != expected_outputs:
        raise BundleError(f"{path}: expected inputs {expected_inputs} and outputs {expected_outputs} "
                          f"(config.json graphs), got inputs {got_inputs} and outputs {got_outputs}")


def _shortlist_operands(config_path, values: dict) -> list[str]:
    """The shortlist record's operand names ([] without a shortlist)."""
    record = values.get("shortlist")
    if not record:
        return []
    operands = record.get("operands") if isinstance(record, dict) else None
    if not isinstance(operands, list) or not operands or not all(isinstance(name, str) for name in operands):
        raise BundleError(f"{config_path}: shortlist.operands: expected the names of candidates.onnx's outputs, got "
                          f"{operands!r} (a shortlist bundle exported before candidates.onnx: export it again)")
    return operands
