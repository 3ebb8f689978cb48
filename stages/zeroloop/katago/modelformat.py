"""KataGo's model file format: ``model.bin`` (gzipped: ``model.bin.gz``).

Written from the reader that defines it, KataGo's ``cpp/neuralnet/desc.cpp``
(v1.17), and the writer ``python/export_model_pytorch.py``. A file is a
stream of whitespace-separated ASCII tokens (names, integers, floats)
in which every weight array is a binary block: ``@BIN@``, then the floats as
little-endian float32, then a newline. Layers, in file order:

- conv: name, ky, kx, in, out, dilation y, dilation x, weights in (y, x, in,
  out) order;
- batch norm: name, channels, epsilon, has-scale, has-bias, mean, variance,
  [scale], [bias]; the engine computes ``scale / sqrt(variance + eps)``;
- activation: name and (version >= 11) ``ACTIVATION_RELU`` etc.;
- matmul: name, in, out, weights in (in, out) order; matbias: name, n, bias.

The model: name (at most 96 of ``[A-Za-z0-9_-]``), version, spatial and
global input counts; for version >= 13 seven output multipliers (td score,
score mean, score stdev, lead, variance time, short-term value error,
short-term score error); for version >= 15 the metadata-encoder version,
the pass-alive-under-suicide flag and six zeros. Then the trunk (a header
of block count and widths, for version >= 15 a norm kind and five zeros;
the input conv, the global-input matmul, the blocks, the final norm and
activation), the policy head and the value head (see ``parse``).

Only batch-norm residual nets (``ordinary_block``, ``gpool_block``) are
handled: the kind zeroloop exports and KataGo's g170-era nets use. Nested
bottleneck and transformer blocks, RMSNorm trunks and metadata encoders are
refused by name. Arrays are held in torch's layout (conv ``(out, in, ky,
kx)``, matmul ``(out, in)``) so code that reads them needs no transposes.
"""

from __future__ import annotations

import gzip
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from zeroloop.errors import ModelFileError

MIN_VERSION = 8  # the first with inputs v7
MAX_VERSION = 17
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,96}")
ACTIVATIONS = ("ACTIVATION_IDENTITY", "ACTIVATION_RELU", "ACTIVATION_MISH", "ACTIVATION_SILU")
MULTIPLIERS = ("td_score", "score_mean", "score_stdev", "lead", "variance_time",
               "shortterm_value_error", "shortterm_score_error")
# What a version <= 12 file means (ModelPostProcessParams' defaults).
DEFAULT_MULTIPLIERS = dict(zip(MULTIPLIERS, (20.0, 20.0, 20.0, 20.0, 40.0, 0.25, 30.0)))
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Conv:
    name: str
    weight: np.ndarray  # (out, in, ky, kx)


@dataclass
class BatchNorm:
    name: str
    epsilon: float
    mean: np.ndarray
    variance: np.ndarray
    scale: np.ndarray | None  # None: 1
    bias: np.ndarray | None  # None: 0

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) as the engine merges them (float32 like its computeMerged)."""
        c = len(self.mean)
        scale = self.scale if self.scale is not None else np.ones(c, np.float32)
        bias = self.bias if self.bias is not None else np.zeros(c, np.float32)
        merged = (scale / np.sqrt(self.variance + np.float32(self.epsilon))).astype(np.float32)
        return merged, (bias - merged * self.mean).astype(np.float32)


@dataclass
class Activation:
    name: str
    kind: str  # one of ACTIVATIONS


@dataclass
class MatMul:
    name: str
    weight: np.ndarray  # (out, in)


@dataclass
class MatBias:
    name: str
    bias: np.ndarray


@dataclass
class OrdinaryBlock:
    name: str
    pre_bn: BatchNorm
    pre_act: Activation
    conv1: Conv
    mid_bn: BatchNorm
    mid_act: Activation
    conv2: Conv


@dataclass
class GPoolBlock:
    name: str
    pre_bn: BatchNorm
    pre_act: Activation
    conv_regular: Conv
    conv_gpool: Conv
    gpool_bn: BatchNorm
    gpool_act: Activation
    gpool_to_bias: MatMul
    mid_bn: BatchNorm
    mid_act: Activation
    conv2: Conv


@dataclass
class Trunk:
    name: str
    widths: tuple[int, int, int, int, int]  # trunk, mid, regular, dilated (unused), gpool
    initial_conv: Conv
    initial_matmul: MatMul
    blocks: list[OrdinaryBlock | GPoolBlock]
    tip_bn: BatchNorm
    tip_act: Activation


@dataclass
class PolicyHead:
    name: str
    p1_conv: Conv
    g1_conv: Conv
    g1_bn: BatchNorm
    g1_act: Activation
    gpool_to_bias: MatMul
    p1_bn: BatchNorm
    p1_act: Activation
    p2_conv: Conv
    pass_mul: MatMul
    pass_bias: MatBias | None = None  # version >= 15: a hidden layer before the pass logits
    pass_act: Activation | None = None
    pass_mul2: MatMul | None = None


@dataclass
class ValueHead:
    name: str
    v1_conv: Conv
    v1_bn: BatchNorm
    v1_act: Activation
    v2_mul: MatMul
    v2_bias: MatBias
    v2_act: Activation
    v3_mul: MatMul  # win, loss, no-result logits
    v3_bias: MatBias
    sv3_mul: MatMul  # score mean, score stdev, lead, variance time, short-term errors
    sv3_bias: MatBias
    ownership_conv: Conv


@dataclass
class Model:
    name: str
    version: int
    num_spatial: int
    num_global: int
    trunk: Trunk
    policy: PolicyHead
    value: ValueHead
    multipliers: dict = field(default_factory=lambda: dict(DEFAULT_MULTIPLIERS))
    meta_encoder_version: int = 0
    pass_alive_under_suicide: bool = False


# ---------------------------------------------------------------- writing


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def line(self, *tokens: object) -> None:
        for t in tokens:
            self.parts.append(_token(t).encode("ascii") + b"\n")

    def floats(self, a: np.ndarray) -> None:
        flat = np.ascontiguousarray(a, dtype="<f4").reshape(-1)
        if not np.isfinite(flat).all():
            raise ValueError("a weight is NaN or infinite: KataGo refuses such a file")
        self.parts.append(b"@BIN@" + flat.tobytes() + b"\n")

    def conv(self, c: Conv) -> None:
        out, cin, ky, kx = c.weight.shape
        self.line(c.name, ky, kx, cin, out, 1, 1)
        self.floats(np.transpose(c.weight, (2, 3, 1, 0)))

    def bn(self, b: BatchNorm) -> None:
        self.line(b.name, len(b.mean), b.epsilon, int(b.scale is not None), int(b.bias is not None))
        for a in (b.mean, b.variance, b.scale, b.bias):
            if a is not None:
                self.floats(a)

    def act(self, a: Activation, version: int) -> None:
        self.line(a.name)
        if version >= 11:
            self.line(a.kind)

    def matmul(self, m: MatMul) -> None:
        out, cin = m.weight.shape
        self.line(m.name, cin, out)
        self.floats(np.transpose(m.weight))

    def matbias(self, m: MatBias) -> None:
        self.line(m.name, len(m.bias))
        self.floats(m.bias)

    def layers(self, version: int, *layers: object) -> None:
        """Each layer in order, in its own encoding."""
        for x in layers:
            if isinstance(x, Conv):
                self.conv(x)
            elif isinstance(x, BatchNorm):
                self.bn(x)
            elif isinstance(x, Activation):
                self.act(x, version)
            elif isinstance(x, MatMul):
                self.matmul(x)
            elif isinstance(x, MatBias):
                self.matbias(x)
            else:
                raise TypeError(f"not a layer: {x!r}")


def _token(t: object) -> str:
    if isinstance(t, bool):
        return str(int(t))
    if isinstance(t, float):
        return repr(t)
    return str(t)


def serialize(model: Model) -> bytes:
    """The uncompressed ``.bin`` bytes of model."""
    v = model.version
    if not MIN_VERSION <= v <= MAX_VERSION:
        raise ValueError(f"model version {v} outside {MIN_VERSION}..{MAX_VERSION}")
    if not NAME_RE.fullmatch(model.name):
        raise ValueError(f"KataGo model name {model.name!r}: at most 96 of A-Z a-z 0-9 _ -")
    w = _Writer()
    w.line(model.name, v, model.num_spatial, model.num_global)
    if v >= 13:
        w.line(*(float(model.multipliers[k]) for k in MULTIPLIERS))
    if v >= 15:
        w.line(model.meta_encoder_version, int(model.pass_alive_under_suicide), 0, 0, 0, 0, 0, 0)
    t = model.trunk
    w.line("trunk", len(t.blocks), *t.widths)
    if v >= 15:
        w.line(0, 0, 0, 0, 0, 0)  # norm kind 0 (batch norm), five unused
    w.layers(v, t.initial_conv, t.initial_matmul)
    for b in t.blocks:
        if isinstance(b, GPoolBlock):
            w.line("gpool_block", b.name)
            w.layers(v, b.pre_bn, b.pre_act, b.conv_regular, b.conv_gpool, b.gpool_bn, b.gpool_act,
                     b.gpool_to_bias, b.mid_bn, b.mid_act, b.conv2)
        else:
            w.line("ordinary_block", b.name)
            w.layers(v, b.pre_bn, b.pre_act, b.conv1, b.mid_bn, b.mid_act, b.conv2)
    w.layers(v, t.tip_bn, t.tip_act)
    p = model.policy
    w.line(p.name)
    if v >= 17:
        w.line(p.p2_conv.weight.shape[0], 0, 0, 0)
    w.layers(v, p.p1_conv, p.g1_conv, p.g1_bn, p.g1_act, p.gpool_to_bias, p.p1_bn, p.p1_act, p.p2_conv, p.pass_mul)
    if v >= 15:
        w.layers(v, p.pass_bias, p.pass_act, p.pass_mul2)
    h = model.value
    w.line(h.name)
    if v >= 17:
        w.line(0, 0, 0)
    w.layers(v, h.v1_conv, h.v1_bn, h.v1_act, h.v2_mul, h.v2_bias, h.v2_act, h.v3_mul, h.v3_bias,
             h.sv3_mul, h.sv3_bias, h.ownership_conv)
    return b"".join(w.parts)


def to_bin_gz(model: Model) -> bytes:
    """model as ``.bin.gz`` bytes (mtime 0, so the same model gives the same bytes)."""
    return gzip.compress(serialize(model), compresslevel=6, mtime=0)


# ---------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data = data
        self.pos = 0
        self.where = where

    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"KataGo model {self.where}: {what} (at byte {self.pos})")

    def token(self, what: str) -> str:
        d, n = self.data, len(self.data)
        i = self.pos
        while i < n and d[i] in b" \t\r\n":
            i += 1
        j = i
        while j < n and d[j] not in b" \t\r\n":
            j += 1
        if i == j:
            self.pos = i
            raise self.fail(f"file ends where {what} should be")
        self.pos = j
        try:
            return d[i:j].decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what}: not ASCII text") from None

    def int(self, what: str, lo: int | None = None, hi: int | None = None) -> int:
        tok = self.token(what)
        try:
            v = int(tok)
        except ValueError:
            raise self.fail(f"{what}: expected an integer, got {tok[:40]!r}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(f"{what} is {v}, expected {lo if lo is not None else ''}..{hi if hi is not None else ''}")
        return v

    def float(self, what: str) -> float:
        tok = self.token(what)
        try:
            v = float(tok)
        except ValueError:
            raise self.fail(f"{what}: expected a number, got {tok[:40]!r}") from None
        if not np.isfinite(v):
            raise self.fail(f"{what} is not finite")
        return v

    def expect(self, word: str) -> None:
        tok = self.token(word)
        if tok != word:
            raise self.fail(f"expected {word!r}, got {tok[:40]!r}")

    def floats(self, count: int, what: str) -> np.ndarray:
        # As desc.cpp: skip (at most 100) characters to '@', then 'BIN@', then the raw floats.
        d = self.data
        start = self.pos
        while self.pos < len(d) and d[self.pos:self.pos + 1] != b"@":
            self.pos += 1
            if self.pos - start > 100:
                raise self.fail(f"{what}: no binary float block (a text-format model?)")
        if d[self.pos:self.pos + 5] != b"@BIN@":
            raise self.fail(f"{what}: no '@BIN@' header of a binary float block")
        self.pos += 5
        end = self.pos + 4 * count
        if end > len(d):
            raise self.fail(f"{what}: file ends inside its {count} floats (truncated?)")
        a = np.frombuffer(d, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos = end
        if not np.isfinite(a).all():
            raise self.fail(f"{what}: NaN or infinite weight")
        return a

    def name(self, what: str) -> str:
        return self.token(what)

    def conv(self, what: str) -> Conv:
        name = self.name(what)
        ky, kx = self.int(f"{name} ky", 1), self.int(f"{name} kx", 1)
        cin, out = self.int(f"{name} in channels", 1), self.int(f"{name} out channels", 1)
        dy, dx = self.int(f"{name} dilation y", 1), self.int(f"{name} dilation x", 1)
        if ky % 2 != 1 or kx % 2 != 1:
            raise self.fail(f"{name}: even convolution size {ky}x{kx}")
        if (dy, dx) != (1, 1):
            raise self.fail(f"{name}: dilated convolutions are not supported")
        w = self.floats(ky * kx * cin * out, name).reshape(ky, kx, cin, out)
        return Conv(name, np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))))

    def bn(self, what: str) -> BatchNorm:
        name = self.name(what)
        c = self.int(f"{name} channels", 1)
        eps = self.float(f"{name} epsilon")
        if eps <= 0:
            raise self.fail(f"{name}: epsilon {eps} is not positive")
        has_scale, has_bias = self.int(f"{name} has-scale", 0, 1), self.int(f"{name} has-bias", 0, 1)
        mean, var = self.floats(c, name), self.floats(c, name)
        scale = self.floats(c, name) if has_scale else None
        bias = self.floats(c, name) if has_bias else None
        return BatchNorm(name, eps, mean, var, scale, bias)

    def act(self, what: str, version: int) -> Activation:
        name = self.name(what)
        if version < 11:
            return Activation(name, "ACTIVATION_RELU")
        kind = self.token(f"{name} kind")
        if kind not in ACTIVATIONS:
            raise self.fail(f"{name}: unknown activation {kind!r}")
        return Activation(name, kind)

    def matmul(self, what: str) -> MatMul:
        name = self.name(what)
        cin, out = self.int(f"{name} in channels", 1), self.int(f"{name} out channels", 1)
        w = self.floats(cin * out, name).reshape(cin, out)
        return MatMul(name, np.ascontiguousarray(w.T))

    def matbias(self, what: str) -> MatBias:
        name = self.name(what)
        return MatBias(name, self.floats(self.int(f"{name} channels", 1), name))

    def zeros(self, count: int, what: str) -> None:
        for i in range(count):
            if self.int(f"{what} option {i}") != 0:
                raise self.fail(f"{what}: unsupported nonzero option {i}")


def read_bytes(data: bytes, where: str = "<bytes>") -> Model:
    """Parse a model from ``.bin`` or ``.bin.gz`` bytes; ModelFileError names what is wrong."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ModelFileError(f"KataGo model {where}: corrupt gzip ({e})") from None
    r = _Reader(data, where)
    name = r.token("model name")
    if not NAME_RE.fullmatch(name):
        raise r.fail(f"model name {name[:100]!r} is not 1-96 of A-Z a-z 0-9 _ -")
    version = r.int("model version")
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise r.fail(f"model version {version}: this reader handles {MIN_VERSION}..{MAX_VERSION}")
    num_spatial, num_global = r.int("spatial input count", 1), r.int("global input count", 1)
    multipliers = dict(DEFAULT_MULTIPLIERS)
    if version >= 13:
        for k in MULTIPLIERS:
            multipliers[k] = r.float(f"{k} multiplier")
            if multipliers[k] <= 0:
                raise r.fail(f"{k} multiplier must be positive")
    meta, pass_alive = 0, False
    if version >= 15:
        meta = r.int("metadata encoder version", 0, 1)
        if meta != 0:
            raise r.fail("SGF-metadata encoders (human-SL nets) are not supported")
        pass_alive = bool(r.int("pass-alive-under-suicide flag", 0, 1))
        r.zeros(6, "model header")
    trunk = _trunk(r, version)
    policy = _policy(r, version)
    value = _value(r, version)
    model = Model(name, version, num_spatial, num_global, trunk, policy, value, multipliers, meta, pass_alive)
    check(model, where)
    return model


def read_file(path: str) -> Model:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelFileError(f"KataGo model {path}: cannot read ({e})") from None
    return read_bytes(data, path)


def _trunk(r: _Reader, v: int) -> Trunk:
    name = r.token("trunk")
    nblocks = r.int("trunk block count", 1)
    widths = tuple(r.int(f"trunk width {i}", 1) for i in range(5))
    if v >= 15:
        kind = r.int("trunk norm kind")
        if kind != 0:
            raise r.fail(f"trunk norm kind {kind} (RMSNorm): only batch-norm trunks are supported")
        r.zeros(5, "trunk")
    conv = r.conv("input conv")
    matmul = r.matmul("global input matmul")
    blocks: list[OrdinaryBlock | GPoolBlock] = []
    for i in range(nblocks):
        kind = r.token(f"block {i} kind")
        bname = r.name(f"block {i} name")
        if kind == "ordinary_block":
            blocks.append(OrdinaryBlock(bname, r.bn("pre norm"), r.act("pre act", v), r.conv("conv1"),
                                        r.bn("mid norm"), r.act("mid act", v), r.conv("conv2")))
        elif kind == "gpool_block":
            blocks.append(GPoolBlock(bname, r.bn("pre norm"), r.act("pre act", v), r.conv("regular conv"),
                                     r.conv("gpool conv"), r.bn("gpool norm"), r.act("gpool act", v),
                                     r.matmul("gpool to bias"), r.bn("mid norm"), r.act("mid act", v),
                                     r.conv("conv2")))
        else:
            raise r.fail(f"block kind {kind[:40]!r}: only ordinary_block and gpool_block are supported")
    return Trunk(name, widths, conv, matmul, blocks, r.bn("trunk tip norm"), r.act("trunk tip act", v))


def _policy(r: _Reader, v: int) -> PolicyHead:
    name = r.token("policy head")
    if v >= 17:
        r.int("policy output channels", 2, 4)
        r.zeros(3, "policy head")
    head = PolicyHead(name, r.conv("p1 conv"), r.conv("g1 conv"), r.bn("g1 norm"), r.act("g1 act", v),
                      r.matmul("gpool to bias"), r.bn("p1 norm"), r.act("p1 act", v), r.conv("p2 conv"),
                      r.matmul("gpool to pass"))
    if v >= 15:
        head.pass_bias = r.matbias("pass bias")
        head.pass_act = r.act("pass act", v)
        head.pass_mul2 = r.matmul("pass 2")
    return head


def _value(r: _Reader, v: int) -> ValueHead:
    name = r.token("value head")
    if v >= 17:
        r.zeros(3, "value head")
    return ValueHead(name, r.conv("v1 conv"), r.bn("v1 norm"), r.act("v1 act", v), r.matmul("v2"),
                     r.matbias("v2 bias"), r.act("v2 act", v), r.matmul("v3"), r.matbias("v3 bias"),
                     r.matmul("score value"), r.matbias("score value bias"), r.conv("ownership conv"))


def policy_channels(version: int) -> int:
    return 4 if version == 16 else 2 if version >= 12 else 1


def check(m: Model, where: str) -> None:
    """The shape agreements desc.cpp checks; ModelFileError on the first broken one."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ModelFileError(f"KataGo model {where}: {what}")

    t, p, h = m.trunk, m.policy, m.value
    c = t.initial_conv.weight.shape[0]
    need(t.initial_conv.weight.shape[1] == m.num_spatial, "input conv does not read the spatial input count")
    need(t.initial_matmul.weight.shape == (c, m.num_global), "global input matmul shape")
    for b in t.blocks:
        need(len(b.pre_bn.mean) == c and b.conv2.weight.shape[0] == c, f"{b.name}: not trunk-wide")
        if isinstance(b, GPoolBlock):
            g = b.conv_gpool.weight.shape[0]
            reg = b.conv_regular.weight.shape[0]
            need(len(b.gpool_bn.mean) == g and b.gpool_to_bias.weight.shape == (reg, 3 * g), f"{b.name}: gpool shapes")
            need(len(b.mid_bn.mean) == reg == b.conv2.weight.shape[1], f"{b.name}: mid shapes")
        else:
            need(len(b.mid_bn.mean) == b.conv1.weight.shape[0] == b.conv2.weight.shape[1], f"{b.name}: mid shapes")
    need(len(t.tip_bn.mean) == c, "trunk tip norm width")
    p1, g1 = p.p1_conv.weight.shape[0], p.g1_conv.weight.shape[0]
    out = policy_channels(m.version) if m.version < 17 else p.p2_conv.weight.shape[0]
    need(p.gpool_to_bias.weight.shape == (p1, 3 * g1), "policy gpool-to-bias shape")
    need(p.p2_conv.weight.shape[:2] == (out, p1), f"policy output conv must give {out} channels from {p1}")
    if m.version >= 15:
        need(p.pass_mul.weight.shape == (p1, 3 * g1) and len(p.pass_bias.bias) == p1
             and p.pass_mul2.weight.shape == (out, p1), "policy pass layers shapes")
    else:
        need(p.pass_mul.weight.shape == (out, 3 * g1), "policy pass shape")
    v1, v2 = h.v1_conv.weight.shape[0], h.v2_mul.weight.shape[0]
    misc = 6 if m.version >= 9 else 4
    need(h.v2_mul.weight.shape == (v2, 3 * v1) and len(h.v2_bias.bias) == v2, "value hidden layer shape")
    need(h.v3_mul.weight.shape == (3, v2) and len(h.v3_bias.bias) == 3, "value output must be 3 wide")
    need(h.sv3_mul.weight.shape == (misc, v2) and len(h.sv3_bias.bias) == misc, f"score value output must be {misc} wide")
    need(h.ownership_conv.weight.shape[:2] == (1, v1), "ownership conv shape")
