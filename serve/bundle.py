"""Reading and checking a bundle directory (see bundle_format.py for its layout)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from serve import bundle_format as fmt


class BundleError(ValueError):
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
        """TransformerConfig fields: num_layers, num_heads, hidden_dim, max_target_length, ..."""
        return self.values["model"]

    @property
    def num_layers(self) -> int:
        return self.model["num_layers"]

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
    for name in (fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.SOURCE_TOKENIZER_FILE, fmt.TARGET_TOKENIZER_FILE):
        if name not in files:
            raise BundleError(f"{config_path}: 'files' lacks {name}")
    for name, expected in files.items():
        file_path = path / name
        if not file_path.is_file():
            raise BundleError(f"{file_path}: missing (listed in {fmt.CONFIG_FILE})")
        if verify_checksums and sha256_of(file_path) != expected:
            raise BundleError(f"{file_path}: sha256 mismatch (expected {expected[:12]}…, got "
                              f"{sha256_of(file_path)[:12]}…): the file is truncated or was changed")
    return BundleConfig(path, values)
