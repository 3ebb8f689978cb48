"""Model files: the exported net that self-play, gatekeeper and GTP load.

A model is a directory holding two files and nothing executable:

- ``model.safetensors``: every weight and batchnorm statistic of the net
  (float32, named as in ``Net.state_dict()``);
- ``model.json``: what the weights mean and where they came from
  (``ModelInfo``): format version, model name, the full net config (so the
  file loads even if its size later leaves ``configs.CONFIGS``), pos_len,
  the feature version and plane counts it was trained on, samples trained,
  data rows, creation time, and free-form training stats.

The directory is published atomically (``Storage.publishing_dir``): a reader
sees a complete model or none. Loading is safetensors + JSON only, never
unpickling, and checks every fact a wrong file could get wrong (format,
feature version, plane counts, config, tensor names, shapes, dtypes, finite
values); any failure raises ``ModelFileError`` naming the file and the
reason. Which models a directory holds, and which is newest, is
``zeroloop.modellist``; what a model may be called, ``zeroloop.modelnames``
(both import without torch).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import posixpath
import time
from dataclasses import dataclass, field

import safetensors
import safetensors.torch
import torch

from zeroloop import features, layout
from zeroloop.errors import ConfigError, ModelFileError
from zeroloop.modelnames import check_model_name
from zeroloop.nn import MAX_POS_LEN
from zeroloop.nn.configs import NetConfig, get_config
from zeroloop.nn.model import Net
from zeroloop.storage import Storage, open_location

FORMAT_VERSION = 1
WEIGHTS_FILE = layout.MODEL_WEIGHTS
INFO_FILE = layout.MODEL_INFO
KATAGO_FILE = layout.MODEL_KATAGO  # optional: the net in KataGo's format (zeroloop.katago.netexport)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """The contents of model.json (``to_json``/``from_json``)."""

    name: str
    config: NetConfig
    pos_len: int
    samples_trained: int = 0
    data_rows: int = 0
    created: float = field(default_factory=time.time)  # seconds since the epoch
    extra: dict = field(default_factory=dict)  # JSON-able training stats, not interpreted
    feature_version: int = features.FEATURE_VERSION
    num_spatial: int = features.NUM_SPATIAL
    num_global: int = features.NUM_GLOBAL
    format_version: int = FORMAT_VERSION

    @classmethod
    def for_model(cls, model: Net, name: str, samples_trained: int = 0, data_rows: int = 0,
                  extra: dict | None = None) -> "ModelInfo":
        """Metadata for saving ``model`` now under ``name``."""
        problem = check_model_name(name)
        if problem:
            raise ValueError(problem)
        num_spatial, num_global = features.shape(model.config.features)
        return cls(name=name, config=model.config, pos_len=model.pos_len, samples_trained=int(samples_trained),
                   data_rows=int(data_rows), extra=dict(extra or {}), feature_version=model.config.features,
                   num_spatial=num_spatial, num_global=num_global)

    @property
    def config_name(self) -> str:
        return self.config.name

    def to_json(self) -> dict:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "config_name": self.config.name,
            "config": self.config.to_dict(),
            "pos_len": self.pos_len,
            "feature_version": self.feature_version,
            "num_spatial": self.num_spatial,
            "num_global": self.num_global,
            "samples_trained": self.samples_trained,
            "data_rows": self.data_rows,
            "created": self.created,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, d: object, where: str) -> "ModelInfo":
        """Parse and check model.json's object; ModelFileError names ``where``."""

        def bad(reason: str) -> ModelFileError:
            return ModelFileError(f"model file {where}: {reason}")

        if not isinstance(d, dict):
            raise bad(f"expected a JSON object, got {type(d).__name__}")

        def get(key: str, kind: type | tuple, default: object = dataclasses.MISSING):
            if key not in d:
                if default is dataclasses.MISSING:
                    raise bad(f"missing key {key!r}")
                return default
            v = d[key]
            if not isinstance(v, kind) or isinstance(v, bool):
                raise bad(f"{key} must be {getattr(kind, '__name__', 'a number')}, got {v!r}")
            return v

        version = get("format_version", int)
        if version != FORMAT_VERSION:
            raise bad(f"format version {version}, this zeroloop reads version {FORMAT_VERSION}")
        fv = get("feature_version", int)
        if fv not in features.SHAPES:
            raise bad(f"trained on feature version {fv}, this zeroloop encodes versions "
                      f"{', '.join(map(str, sorted(features.SHAPES)))}: the net would misread its inputs")
        for key, want in zip(("num_spatial", "num_global"), features.shape(fv)):
            got = get(key, int)
            if got != want:
                raise bad(f"{key} is {got}, this zeroloop's feature version {fv} has {want}")
        pos_len = get("pos_len", int)
        if not 2 <= pos_len <= MAX_POS_LEN:
            raise bad(f"pos_len {pos_len} outside 2..{MAX_POS_LEN}")
        try:
            if "config" in d:
                config = NetConfig.from_dict(d["config"])
            else:
                config = get_config(get("config_name", str))
        except ConfigError as e:
            raise bad(str(e)) from None
        if config.features != fv:
            raise bad(f"feature_version {fv} but the net config reads version {config.features}")
        extra = get("extra", dict, {})
        samples = get("samples_trained", int, 0)
        rows = get("data_rows", int, 0)
        if samples < 0 or rows < 0:
            raise bad("samples_trained and data_rows must not be negative")
        name = get("name", str)
        problem = check_model_name(name)
        if problem:
            raise bad(problem)
        return cls(name=name, config=config, pos_len=pos_len, samples_trained=samples,
                   data_rows=rows, created=float(get("created", (int, float), 0.0)), extra=extra,
                   feature_version=fv, num_spatial=d["num_spatial"], num_global=d["num_global"],
                   format_version=version)


def save_model(storage: Storage, path: str, model: Net, info: ModelInfo,
               extra_files: dict[str, bytes] | None = None) -> ModelInfo:
    """Publish ``model`` as the model directory ``path`` (atomically; it must not exist).

    ``extra_files`` (name -> bytes) are published in the same directory, e.g.
    the KataGo form of the net (``KATAGO_FILE``).
    """
    if info.config != model.config or info.pos_len != model.pos_len:
        raise ValueError(f"model info ({info.config.name}, pos_len {info.pos_len}) does not describe the model "
                         f"({model.config.name}, pos_len {model.pos_len})")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    weights = safetensors.torch.save(tensors, metadata={"format": "pt", "zeroloop_model": info.name})
    text = json.dumps(info.to_json(), indent=2, sort_keys=True).encode() + b"\n"
    with storage.publishing_dir(path) as staging:
        storage.write_bytes(posixpath.join(staging, WEIGHTS_FILE), weights)
        storage.write_bytes(posixpath.join(staging, INFO_FILE), text)
        for name, data in (extra_files or {}).items():
            storage.write_bytes(posixpath.join(staging, name), data)
    return info


def _read(storage: Storage, where: str) -> bytes:
    try:
        return storage.read_bytes(where)
    except FileNotFoundError:
        raise ModelFileError(f"model file {where}: missing") from None
    except OSError as e:
        raise ModelFileError(f"model file {where}: unreadable ({e})") from None


def read_info(storage: Storage, path: str) -> ModelInfo:
    """The checked model.json of the model directory ``path``."""
    _check_dir(storage, path)
    where = posixpath.join(path, INFO_FILE)
    raw = _read(storage, where)
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"model file {where}: not valid JSON ({e})") from None
    return ModelInfo.from_json(d, where)


def load_model(storage: Storage, path: str, device: str | torch.device = "cpu") -> tuple[Net, ModelInfo]:
    """Load the model directory ``path`` as an eval-mode Net on ``device``, with its info."""
    info = read_info(storage, path)
    where = posixpath.join(path, WEIGHTS_FILE)
    raw = _read(storage, where)
    try:
        tensors = safetensors.torch.load(raw)
    except safetensors.SafetensorError as e:
        raise ModelFileError(f"model file {where}: not a valid safetensors file, truncated or corrupt ({e})") from None
    net = Net(info.config, info.pos_len)
    _check_tensors(tensors, net.state_dict(), where, info.config.name)
    net.load_state_dict(tensors, strict=True)
    return net.to(device).eval(), info


def load_model_at(location: str, device: str | torch.device = "cpu") -> tuple[Net, ModelInfo]:
    """load_model for a path or URL string (GTP's ``--model``)."""
    storage, path = open_location(location)
    return load_model(storage, path, device)


def _check_dir(storage: Storage, path: str) -> None:
    if not storage.exists(path):
        raise ModelFileError(f"model directory {path}: does not exist")
    if not storage.fs.isdir(path):
        raise ModelFileError(f"model directory {path}: not a directory (a model is a directory "
                             f"holding {WEIGHTS_FILE} and {INFO_FILE})")
    if not storage.is_complete_dir(path):
        raise ModelFileError(f"model directory {path}: incomplete (still being written, or its writer died)")


def _check_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], where: str, config: str) -> None:
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors {_few(unexpected)}")
        raise ModelFileError(f"model file {where}: does not match config {config}: " + "; ".join(parts))
    for key, ref in want.items():
        t = got[key]
        if tuple(t.shape) != tuple(ref.shape):
            raise ModelFileError(f"model file {where}: tensor {key} has shape {tuple(t.shape)}, "
                                 f"config {config} needs {tuple(ref.shape)}")
        if t.dtype != torch.float32:
            raise ModelFileError(f"model file {where}: tensor {key} has dtype {t.dtype}, expected float32")
        if not torch.isfinite(t).all():
            raise ModelFileError(f"model file {where}: tensor {key} holds NaN or infinite values")


def _few(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")
