"""Named net sizes: one table, ``b<blocks>c<channels>``, as KataGo names them.

A ``NetConfig`` is everything that fixes a net's shapes: the residual blocks
(each ``regular`` or ``gpool``, the latter pooling part of its channels into
a bias), trunk and block widths, and head widths. The table ``CONFIGS`` is
the one place sizes are defined; add an entry to add a size. Model files
store the full config (``to_dict``), so a file stays loadable even if its
name later leaves the table.

Head widths follow KataGo's model configs (b6c96: p1 = g1 = v1 = 32,
v2 = 64; gpool blocks at positions 2 and 4); b1c16 is a toy for tests whose
single block is a gpool block, so that a test exercises every layer kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from zeroloop.errors import ConfigError

BLOCK_KINDS = ("regular", "gpool")
OPTIONAL_KEYS = {"soft_policy", "td_value", "features", "input_kernel"}  # keys added later: files from before lack them
HEAD_KEYS = ("soft_policy", "td_value")  # training-only heads, off by default: omitted from a file when off


@dataclass(frozen=True)
class NetConfig:
    """The shapes of a net (not its board size: that is the model's pos_len)."""

    name: str
    blocks: tuple[str, ...]  # each "regular" or "gpool", input to output
    trunk: int  # channels of the residual stream
    mid: int  # channels inside a block (regular part + pooled part in gpool blocks)
    gpool: int  # channels of a gpool block that are pooled into a bias
    policy: int  # p1: policy head channels
    policy_gpool: int  # g1: policy head channels pooled for the bias and pass logit
    value: int  # v1: value head channels (also feed ownership)
    value_hidden: int  # v2: width of the value head's hidden linear layer
    # KataGo's soft policy outputs (training only: a target flattened to the power 1/4); a net without
    # them is exactly the net of before, and its file's config omits the key.
    soft_policy: bool = False
    # KataGo's short-term (TD) value outputs: win/loss/draw and score over three horizons (training only);
    # like soft_policy, absent from the file's config when off.
    td_value: bool = False
    # The input feature version the net reads (``zeroloop.features``): 1, zeroloop's 12 planes, or 2, KataGo's
    # inputs v7. Version 1 is omitted from the file's config, so nets from before read as what they are.
    features: int = 1
    # Kernel size of the first (input) convolution: 3, or 5 as KataGo's g170 nets (imported ones); 3 is omitted
    # from the file's config.
    input_kernel: int = 3

    def __post_init__(self) -> None:
        problems = []
        if not self.blocks:
            problems.append("needs at least one block")
        bad = [b for b in self.blocks if b not in BLOCK_KINDS]
        if bad:
            problems.append(f"unknown block kinds {bad} (known: {', '.join(BLOCK_KINDS)})")
        for f in ("trunk", "mid", "gpool", "policy", "policy_gpool", "value", "value_hidden"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                problems.append(f"{f} must be a positive integer, got {v!r}")
        for key in HEAD_KEYS:
            if not isinstance(getattr(self, key), bool):
                problems.append(f"{key} must be true or false, got {getattr(self, key)!r}")
        from zeroloop import features  # here: configs stays importable without numba's modules loaded

        if not isinstance(self.features, int) or isinstance(self.features, bool) or self.features not in features.SHAPES:
            problems.append(f"features must be one of the feature versions {sorted(features.SHAPES)}, "
                            f"got {self.features!r}")
        if self.input_kernel not in (1, 3, 5, 7, 9) or isinstance(self.input_kernel, bool):
            problems.append(f"input_kernel must be an odd size 1-9, got {self.input_kernel!r}")
        if "gpool" in self.blocks and isinstance(self.gpool, int) and isinstance(self.mid, int) \
                and self.gpool >= self.mid:
            problems.append(f"gpool ({self.gpool}) must be less than mid ({self.mid})")
        if problems:
            raise ConfigError(f"net config {self.name!r}: " + "; ".join(problems))

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"] = list(self.blocks)
        for key in HEAD_KEYS:
            if not d[key]:
                del d[key]  # files of nets without the head stay as they were
        if self.features == 1:
            del d["features"]
        if self.input_kernel == 3:
            del d["input_kernel"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        """Inverse of to_dict; unknown or missing keys raise ConfigError."""
        if not isinstance(d, dict):
            raise ConfigError(f"net config must be an object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        missing = sorted(names - set(d) - set(OPTIONAL_KEYS))
        if unknown or missing:
            what = []
            if unknown:
                what.append(f"unknown keys {unknown}")
            if missing:
                what.append(f"missing keys {missing}")
            raise ConfigError(f"net config {d.get('name', '?')!r}: " + "; ".join(what))
        blocks = d["blocks"]
        if not isinstance(blocks, (list, tuple)):
            raise ConfigError(f"net config {d.get('name')!r}: blocks must be a list, got {blocks!r}")
        return cls(**{**d, "blocks": tuple(blocks)})


def _blocks(n: int, gpool_at: tuple[int, ...]) -> tuple[str, ...]:
    return tuple("gpool" if i in gpool_at else "regular" for i in range(n))


CONFIGS: dict[str, NetConfig] = {
    c.name: c
    for c in (
        NetConfig("b1c16", _blocks(1, (0,)), trunk=16, mid=16, gpool=8,
                  policy=8, policy_gpool=8, value=8, value_hidden=16),
        NetConfig("b2c32", _blocks(2, (1,)), trunk=32, mid=32, gpool=16,
                  policy=16, policy_gpool=16, value=16, value_hidden=32),
        NetConfig("b4c64", _blocks(4, (2,)), trunk=64, mid=64, gpool=16,
                  policy=24, policy_gpool=24, value=24, value_hidden=48),
        NetConfig("b6c96", _blocks(6, (2, 4)), trunk=96, mid=96, gpool=32,
                  policy=32, policy_gpool=32, value=32, value_hidden=64),
        NetConfig("b10c128", _blocks(10, (2, 5, 8)), trunk=128, mid=128, gpool=32,
                  policy=32, policy_gpool=32, value=32, value_hidden=64),
        NetConfig("b15c192", _blocks(15, (2, 5, 8, 11, 14)), trunk=192, mid=192, gpool=64,
                  policy=32, policy_gpool=32, value=32, value_hidden=80),
        NetConfig("b20c256", _blocks(20, (2, 5, 8, 11, 14, 17)), trunk=256, mid=256, gpool=64,
                  policy=48, policy_gpool=48, value=48, value_hidden=96),
    )
}

DEFAULT_CONFIG = "b6c96"


def get_config(name: str) -> NetConfig:
    """The named config, or ConfigError listing the known names."""
    try:
        return CONFIGS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown net config {name!r}; known: {', '.join(CONFIGS)}") from None
