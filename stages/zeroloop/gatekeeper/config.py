"""Gatekeeper settings: one typed, documented, strictly checked config.

The keys the Kubernetes operator writes (``board_sizes``,
``board_size_weights``, ``komi_mean``, ``max_visits``,
``num_games_per_gating``, ``sprt``, ``sprt_elo0``, ``sprt_elo1``,
``sprt_alpha``, ``sprt_beta``) are all here; the rest have defaults after
KataGo's gatekeeper1.cfg scaled to zeroloop's sizes. ``--config cpu`` and
``--config gpu`` name the packaged files ``configs/gatekeeper_cpu.toml``
and ``configs/gatekeeper_gpu.toml``; any other value is a TOML or YAML path.
"""

from __future__ import annotations

from dataclasses import dataclass

from zeroloop import config as cfg
from zeroloop.arena import ArenaSettings
from zeroloop.errors import ConfigError
from zeroloop.gating import SprtParams
from zeroloop.go import board as B
from zeroloop.go.rules import KO_RULES, MAX_KOMI
from zeroloop.search.batch import SearchParams

PACKAGED = {"cpu": "gatekeeper_cpu.toml", "gpu": "gatekeeper_gpu.toml"}
option = cfg.option


@dataclass(frozen=True)
class GatekeeperConfig:
    # the match
    num_games_per_gating: int = option(100, "games per candidate at most (KataGo: 200); the match stops as "
                                            "soon as the result is decided", lo=1, hi=100000)
    num_games_at_once: int = option(32, "games played at once; also each net's batch size", lo=1, hi=4096)
    board_sizes: list[int] = option(None, "board sizes to play", factory=lambda: [9], lo=B.MIN_SIZE, hi=B.MAX_SIZE)
    board_size_weights: list[float] = option(None, "relative frequency of each board size (same length)",
                                             factory=lambda: [1.0], lo=0.0)
    komi_mean: float = option(7.0, "komi (area scoring)", lo=-MAX_KOMI, hi=MAX_KOMI)
    komi_stdev: float = option(0.0, "standard deviation of a random komi variation per game (0: fixed)",
                               lo=0.0, hi=50.0)
    ko_rules: list[str] = option(None, "ko rules to draw from uniformly", factory=lambda: ["positional"],
                                 choices=tuple(KO_RULES))
    multi_stone_suicide_prob: float = option(0.0, "probability that a game allows multi-stone suicide",
                                             lo=0.0, hi=1.0)
    max_moves_per_area: float = option(4.0, "a game ends after this many moves per board point (scored as is)",
                                       lo=0.5, hi=20.0)
    # search and move choice
    max_visits: int = option(50, "visits per move (KataGo: 150)", lo=1, hi=100000)
    cpuct: float = option(1.1, "PUCT exploration constant", lo=0.0, hi=100.0)
    fpu_reduction: float = option(0.2, "first-play-urgency reduction", lo=0.0, hi=2.0)
    score_utility_factor: float = option(0.1, "weight of the score utility next to win/loss", lo=0.0, hi=10.0)
    random_symmetry: bool = option(True, "evaluate each position under a random one of the 8 symmetries")
    use_lcb_for_selection: bool = option(False, "choose moves by the lower confidence bound of their value where it "
                                                "is clearly better, not by visits alone (KataGo: true)")
    lcb_stdevs: float = option(5.0, "the LCB's width in standard deviations (KataGo: 5)", lo=0.0, hi=100.0)
    min_visit_prop_for_lcb: float = option(0.15, "a move needs this share of the best move's visits for the LCB "
                                                 "to choose it (KataGo: 0.15)", lo=0.0, hi=1.0)
    fpu_parent_weight_by_visited_policy_pow: float = option(
        0.0, "first-play urgency from the parent's average blended toward its own net utility by (visited policy "
             "mass) ** this; 0 off (KataGo: 2.0)", lo=0.0, hi=100.0)
    dynamic_score_utility_factor: float = option(0.0, "weight of a score utility centred on the root's expected "
                                                      "score; 0 off (KataGo: 0.40)", lo=0.0, hi=10.0)
    subtree_value_bias_factor: float = option(0.0, "share of the observed error of the net's value for a local "
                                                   "pattern added to a node's own value; 0 off (KataGo: 0.30)",
                                              lo=0.0, hi=1.0)
    nn_precision: str = option("fp32", "the nets' arithmetic: fp32, or fp16/bf16 where the device is fast in it",
                               choices=("fp32", "fp16", "bf16"))
    move_temperature_early: float = option(0.5, "move choice temperature at move 0", lo=0.0, hi=100.0)
    move_temperature: float = option(0.2, "move choice temperature it decays to", lo=0.0, hi=100.0)
    temperature_halflife: float = option(19.0, "temperature half-life in moves on 19x19 (scaled by "
                                               "19/sqrt(area) on other sizes)", lo=0.01, hi=10000.0)
    resign_threshold: float = option(-0.9, "resign when the search's win-loss value (-1..1) stays below this",
                                     lo=-1.0, hi=1.0)
    resign_consec_turns: int = option(5, "... for this many consecutive own moves, after area/5 moves (0: never)",
                                      lo=0, hi=1000)
    # the decision
    sprt: bool = option(False, "decide by a sequential probability ratio test (Leela Zero) instead of the "
                               "fixed-length rule; the game cap still applies")
    sprt_elo0: float = option(0.0, "SPRT null hypothesis: the candidate is this many Elo stronger", lo=-1000.0,
                              hi=1000.0)
    sprt_elo1: float = option(35.0, "SPRT alternative hypothesis (Leela Zero: 35)", lo=-1000.0, hi=1000.0)
    sprt_alpha: float = option(0.05, "SPRT false-accept rate", lo=1e-6, hi=0.499)
    sprt_beta: float = option(0.05, "SPRT false-reject rate", lo=1e-6, hi=0.499)
    # process
    poll_seconds: float = option(4.0, "how often to look for candidates when there are none", lo=0.05, hi=86400.0)
    log_every_games: int = option(10, "log the match's tally every this many games", lo=1, hi=100000)

    def __post_init__(self) -> None:
        if not self.board_sizes:
            raise ConfigError("board_sizes is empty")
        if len(self.board_size_weights) != len(self.board_sizes):
            raise ConfigError(f"board_size_weights has {len(self.board_size_weights)} entries but board_sizes has "
                              f"{len(self.board_sizes)}")
        if sum(self.board_size_weights) <= 0:
            raise ConfigError("board_size_weights must have a positive entry")
        if not self.ko_rules:
            raise ConfigError("ko_rules is empty")
        if self.sprt and not self.sprt_elo1 > self.sprt_elo0:
            raise ConfigError(f"sprt_elo1 ({self.sprt_elo1}) must be greater than sprt_elo0 ({self.sprt_elo0})")

    @property
    def max_board_size(self) -> int:
        return max(self.board_sizes)

    def arena(self) -> ArenaSettings:
        return ArenaSettings(
            num_games_at_once=self.num_games_at_once, board_sizes=tuple(self.board_sizes),
            board_size_weights=tuple(self.board_size_weights), komi_mean=self.komi_mean,
            komi_stdev=self.komi_stdev, ko_rules=tuple(self.ko_rules),
            multi_stone_suicide_prob=self.multi_stone_suicide_prob, max_moves_per_area=self.max_moves_per_area,
            max_visits=self.max_visits, resign_threshold=self.resign_threshold,
            resign_consec_turns=self.resign_consec_turns, move_temperature_early=self.move_temperature_early,
            move_temperature=self.move_temperature, temperature_halflife=self.temperature_halflife,
            search=SearchParams(cpuct=self.cpuct, fpu_reduction=self.fpu_reduction,
                                root_fpu_reduction=self.fpu_reduction, forced_playouts_coeff=0.0,
                                score_utility_factor=self.score_utility_factor, dirichlet_weight=0.0,
                                random_symmetry=self.random_symmetry, use_lcb=self.use_lcb_for_selection,
                                lcb_stdevs=self.lcb_stdevs, min_visit_prop_for_lcb=self.min_visit_prop_for_lcb,
                                fpu_parent_weight_pow=self.fpu_parent_weight_by_visited_policy_pow,
                                dynamic_score_utility_factor=self.dynamic_score_utility_factor,
                                subtree_value_bias_factor=self.subtree_value_bias_factor))

    def sprt_params(self) -> SprtParams | None:
        if not self.sprt:
            return None
        return SprtParams(self.sprt_elo0, self.sprt_elo1, self.sprt_alpha, self.sprt_beta)


def load(path_or_name: str | None, overrides: dict | None = None) -> GatekeeperConfig:
    """The config from a file, a packaged name ('cpu', 'gpu'), or the defaults (None)."""
    return cfg.load(GatekeeperConfig, path_or_name, overrides, packaged=PACKAGED)
