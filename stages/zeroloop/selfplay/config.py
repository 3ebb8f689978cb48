"""Self-play settings: one typed, documented, strictly checked config.

Every key has a default and a doc string (``zeroloop.config.describe``
prints them). Two packaged files hold the defaults for the two usual
machines: ``configs/selfplay_cpu.toml`` (9x9, few visits) and
``configs/selfplay_gpu.toml`` (19x19 plus smaller sizes weighted as
KataGo's selfplay1.cfg). ``--config cpu`` or ``--config gpu`` names them;
any other value is a path to a TOML or YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeroloop import config as cfg
from zeroloop.errors import ConfigError
from zeroloop.go import KO_RULE_NAMES, MAX_KOMI
from zeroloop.go import MAX_SIZE as MAX_BOARD
from zeroloop.go import MIN_SIZE as MIN_BOARD

if TYPE_CHECKING:
    from zeroloop.search.batch import SearchParams

PACKAGED = {"cpu": "selfplay_cpu.toml", "gpu": "selfplay_gpu.toml"}
option = cfg.option


@dataclass(frozen=True)
class SelfplayConfig:
    # games and boards
    num_games: int = option(64, "games played at once; also the neural-net batch size", lo=1, hi=4096)
    board_sizes: list[int] = option(None, "board sizes to play", factory=lambda: [9], lo=MIN_BOARD, hi=MAX_BOARD)
    board_size_weights: list[float] = option(None, "relative frequency of each board size (same length)",
                                             factory=lambda: [1.0], lo=0.0)
    data_board_len: int = option(9, "board length of training rows (the trainer's pos_len); at least the "
                                    "largest board size", lo=MIN_BOARD, hi=MAX_BOARD)
    max_moves_per_area: float = option(4.0, "a game ends after this many moves per board point (scored as is)",
                                       lo=0.5, hi=20.0)
    end_when_pass_alive: bool = option(True, "end a game once every point is a pass-alive stone or territory of "
                                             "either side (Benson's algorithm), scored by that area: shorter games, "
                                             "the result and ownership of playing on (KataGo's "
                                             "endGameIfAllPassAlive)")
    # rules and komi
    ko_rules: list[str] = option(None, "ko rules to draw from uniformly", factory=lambda: ["positional"],
                                 choices=KO_RULE_NAMES)
    multi_stone_suicide_prob: float = option(0.0, "probability that a game allows multi-stone suicide",
                                             lo=0.0, hi=1.0)
    komi_mean: float = option(7.0, "mean komi (area scoring)", lo=-MAX_KOMI, hi=MAX_KOMI)
    komi_stdev: float = option(1.0, "standard deviation of the komi's random variation", lo=0.0, hi=50.0)
    komi_big_stdev_prob: float = option(0.06, "probability of using komi_big_stdev instead", lo=0.0, hi=1.0)
    komi_big_stdev: float = option(12.0, "the larger komi standard deviation", lo=0.0, hi=100.0)
    komi_auto: bool = option(False, "the komi's mean is the komi at which the model scores the empty board even "
                                    "(per model and board size, from komi_mean), not komi_mean; the random "
                                    "variation around it stays (KataGo's komiAuto)")
    # opening variety
    handicap_prob: float = option(0.0, "probability of a handicap game on 9x9 and larger: Black first places 1 "
                                       "to 1-5 extra stones (by board size) from the net's policy, White passing "
                                       "after each (KataGo: 0.10, from 11x11)", lo=0.0, hi=1.0)
    policy_init_area_prop: float = option(0.0, "play a game's first moves from the net's raw policy (one "
                                               "evaluation each, not recorded): on average this proportion of the "
                                               "board's area, exponentially distributed (KataGo's "
                                               "initGamesWithPolicy: 0.04)", lo=0.0, hi=1.0)
    policy_init_temperature: float = option(1.0, "temperature of those policy moves", lo=0.01, hi=10.0)
    early_fork_game_prob: float = option(0.0, "probability that a finished game is forked: a new game starts from "
                                              "its position after an early move, with the best by the net's score "
                                              "of a few random legal moves (KataGo: 0.04)", lo=0.0, hi=1.0)
    early_fork_expected_move_prop: float = option(0.025, "the fork's move, on average this proportion of the "
                                                         "board's area (exponentially distributed)", lo=0.0, hi=1.0)
    fork_min_choices: int = option(3, "random legal moves a fork chooses from, at least", lo=1, hi=361)
    early_fork_max_choices: int = option(12, "random legal moves an early fork chooses from, at most", lo=1, hi=361)
    # search budget (playout-cap randomisation)
    max_visits: int = option(100, "visits of a full search (recorded as a training row)", lo=1, hi=100000)
    cheap_visits: int = option(25, "visits of a cheap search (not recorded)", lo=1, hi=100000)
    full_search_prob: float = option(0.25, "probability that a move gets a full search", lo=0.0, hi=1.0)
    reuse_tree: bool = option(True, "keep the chosen move's subtree for the next search")
    fresh_tree_full_search: bool = option(False, "a full search starts from a fresh tree, so root noise, "
                                                 "temperature and forced playouts act on all its visits; cheap "
                                                 "searches still reuse (KataGo: true)")
    # reduced visits once one side is clearly winning (KataGo's reduceVisits)
    reduce_visits: bool = option(False, "give a full search fewer visits, and its row less weight, once the root "
                                        "values of the last reduce_visits_lookback searches all say one side wins "
                                        "(KataGo: on)")
    reduce_visits_threshold: float = option(0.9, "win-loss value (-1..1) beyond which visits are reduced; they "
                                                 "reach reduced_visits_min at a certain win (quadratically)",
                                            lo=0.0, hi=0.999)
    reduce_visits_lookback: int = option(3, "searches whose root values must all be beyond the threshold",
                                         lo=1, hi=100)
    reduced_visits_min: int = option(25, "visits of a full search at a certain win (KataGo: 100 of 600)",
                                     lo=1, hi=100000)
    reduced_visits_weight: float = option(0.1, "row weight of a full search at a certain win", lo=0.0, hi=1.0)
    # search constants
    cpuct: float = option(1.1, "PUCT exploration constant", lo=0.0, hi=100.0)
    fpu_reduction: float = option(0.2, "first-play-urgency reduction below the root", lo=0.0, hi=2.0)
    root_fpu_reduction: float = option(0.0, "first-play-urgency reduction at the root of a full search",
                                       lo=0.0, hi=2.0)
    forced_playouts_coeff: float = option(2.0, "forced playouts at the root of a full search: sqrt(k*P*N); 0 off",
                                          lo=0.0, hi=100.0)
    score_utility_factor: float = option(0.1, "weight of the atan-shaped score utility next to win/loss",
                                         lo=0.0, hi=10.0)
    dirichlet_alpha_total: float = option(10.83, "Dirichlet noise total concentration, spread over legal moves",
                                          lo=1e-6, hi=10000.0)
    dirichlet_weight: float = option(0.25, "weight of the root noise in a full search; 0 off", lo=0.0, hi=1.0)
    shaped_dirichlet_noise: bool = option(False, "half of the root noise's concentration goes to moves with a high "
                                                 "log-policy, half uniformly; false: all uniform (KataGo: true)")
    fpu_parent_weight_by_visited_policy_pow: float = option(
        0.0, "first-play urgency starts from the parent's average blended toward its own net utility, the "
             "average weighted by (policy mass of visited children) ** this; 0 off (KataGo: 2.0)", lo=0.0, hi=100.0)
    dynamic_score_utility_factor: float = option(0.0, "weight of a score utility centred on the root's expected "
                                                      "score, so a won or lost game still plays for points; 0 off "
                                                      "(KataGo: 0.40, with score_utility_factor 0)", lo=0.0, hi=10.0)
    dynamic_score_center_zero_weight: float = option(0.25, "the dynamic score centre is the root's expected score "
                                                           "times (1 - this) (KataGo: 0.25)", lo=0.0, hi=1.0)
    dynamic_score_center_scale: float = option(0.5, "the dynamic score utility's scale, and the farthest the centre "
                                                    "moves from the expected score, in units of sqrt(area) "
                                                    "(KataGo: 0.5)", lo=0.01, hi=100.0)
    subtree_value_bias_factor: float = option(0.0, "share of the observed error of the net's value for a local "
                                                   "pattern (subtree mean minus net, averaged over the tree's "
                                                   "nodes with that move, previous move and 5x5 pattern) added to "
                                                   "a node's own value; 0 off (KataGo: 0.30)", lo=0.0, hi=1.0)
    subtree_value_bias_exponent: float = option(0.8, "a node's weight in its pattern's average is (its child "
                                                     "visits) ** this (KataGo: 0.8)", lo=0.0, hi=2.0)
    lcb_policy_target: bool = option(False, "the recorded policy target raises the move whose value's lower "
                                            "confidence bound is clearly best (5 stdevs, at least 15% of the "
                                            "top move's visits) above the moves it beats; the move played is "
                                            "chosen as before (KataGo: true, its useLcbForSelection)")
    random_symmetry: bool = option(True, "evaluate each position under a random one of the 8 symmetries")
    nn_precision: str = option("fp32", "the net's arithmetic: fp32, or fp16/bf16 where the device is fast in it "
                                       "(CUDA tensor cores; CPUs with AVX512_BF16 for bf16)",
                               choices=("fp32", "fp16", "bf16"))
    features: str = option("zeroloop", "the net inputs: zeroloop (12 planes) or katago-v7 (KataGo's inputs v7 with "
                           "ladder and area planes); the random model's, and models of another are skipped",
                           choices=("zeroloop", "katago-v7"))
    # temperatures
    root_policy_temperature_early: float = option(1.25, "root policy softmax temperature at move 0 (full search)",
                                                  lo=0.01, hi=100.0)
    root_policy_temperature: float = option(1.1, "root policy temperature it decays to", lo=0.01, hi=100.0)
    move_temperature_early: float = option(0.75, "move choice temperature at move 0", lo=0.0, hi=100.0)
    move_temperature: float = option(0.15, "move choice temperature it decays to", lo=0.0, hi=100.0)
    temperature_halflife: float = option(19.0, "temperature half-life in moves on 19x19 (scaled by "
                                               "19/sqrt(area) on other sizes)", lo=0.01, hi=10000.0)
    # training targets and row weights
    policy_surprise_data_weight: float = option(0.0, "share of a game's row weight given out in proportion to "
                                                     "policy surprise (KL of the search's policy from the net's; "
                                                     "KataGo: 0.5)", lo=0.0, hi=1.0)
    value_surprise_data_weight: float = option(0.0, "share of a game's row weight given out in proportion to "
                                                    "value surprise (KL of the smoothed outcome from the net's "
                                                    "value; KataGo: 0.1)", lo=0.0, hi=1.0)
    opponent_policy_from_search: bool = option(False, "the opponent-policy target is the next turn's search "
                                                      "distribution (KataGo's) instead of a one-hot of the move "
                                                      "played")
    # output
    max_rows_per_file: int = option(10000, "training rows per tdata file at most (files hold whole games: "
                                           "one game with more rows gets a file of its own)", lo=1, hi=10_000_000)
    first_file_min_prop: float = option(0.15, "a writer's first file is capped at a random size in "
                                              "[prop*max_rows_per_file, max_rows_per_file]", lo=0.0, hi=1.0)
    write_sgfs: bool = option(True, "write each game's SGF under selfplay/<model>/sgfs")
    model_poll_seconds: float = option(20.0, "how often to look for a newer model", lo=0.05, hi=86400.0)
    log_every_seconds: float = option(60.0, "seconds between progress log lines", lo=0.1, hi=86400.0)
    # games in progress across stops (preemptible pods): zeroloop.selfplay.inprogress
    save_games_in_progress: bool = option(True, "on SIGTERM/SIGINT and periodically, save unfinished games under "
                                                "<output-dir>/<model>/inprogress so that a restarted process "
                                                "finishes them; false drops them (KataGo's behaviour)")
    inprogress_stop_search_seconds: float = option(5.0, "at SIGTERM/SIGINT, let the searches in progress whose "
                                                        "visits are worth more than the steps that finish them "
                                                        "(zeroloop.selfplay.stopping) and can finish in time run "
                                                        "to their moves for at most this long before saving "
                                                        "(their visits become moves, not lost); 0: save at once",
                                                   lo=0.0, hi=600.0)
    inprogress_save_seconds: float = option(30.0, "save games in progress this often: a SIGKILL loses at most "
                                                  "this much play", lo=0.1, hi=86400.0)
    inprogress_save_moves: int = option(0, "also save once the games have played this many moves each, on "
                                           "average, since the last save (0: by time only)", lo=0, hi=100000)
    inprogress_stale_seconds: float = option(300.0, "another process's periodic save not refreshed for this long "
                                                    "was left by a killed process and is adopted; keep it several "
                                                    "times inprogress_save_seconds", lo=1.0, hi=7 * 86400.0)
    inprogress_max_age_seconds: float = option(6 * 3600.0, "saved games older than this are discarded, not "
                                                           "adopted (their recorded rows come from an old model)",
                                               lo=1.0, hi=365 * 86400.0)
    inprogress_poll_seconds: float = option(60.0, "how often a running process looks for saved games to adopt "
                                                  "(it also looks at start)", lo=0.05, hi=86400.0)

    def __post_init__(self) -> None:
        if len(self.board_size_weights) != len(self.board_sizes):
            raise ConfigError(f"board_size_weights has {len(self.board_size_weights)} entries but board_sizes has "
                              f"{len(self.board_sizes)}")
        if not self.board_sizes:
            raise ConfigError("board_sizes is empty")
        if sum(self.board_size_weights) <= 0:
            raise ConfigError("board_size_weights must have a positive entry")
        if max(self.board_sizes) > self.data_board_len:
            raise ConfigError(f"data_board_len {self.data_board_len} is smaller than board size "
                              f"{max(self.board_sizes)}")
        if self.policy_surprise_data_weight + self.value_surprise_data_weight > 1.0:
            raise ConfigError(f"policy_surprise_data_weight {self.policy_surprise_data_weight:g} plus "
                              f"value_surprise_data_weight {self.value_surprise_data_weight:g} is more than 1")
        if self.reduce_visits and self.reduced_visits_min > self.max_visits:
            raise ConfigError(f"reduced_visits_min {self.reduced_visits_min} is more than max_visits "
                              f"{self.max_visits}")
        if self.fork_min_choices > self.early_fork_max_choices:
            raise ConfigError(f"fork_min_choices {self.fork_min_choices} is more than early_fork_max_choices "
                              f"{self.early_fork_max_choices}")
        if not self.ko_rules:
            raise ConfigError("ko_rules is empty")
        if self.save_games_in_progress and self.inprogress_stale_seconds < 2 * self.inprogress_save_seconds:
            raise ConfigError(f"inprogress_stale_seconds {self.inprogress_stale_seconds:g} must be at least twice "
                              f"inprogress_save_seconds {self.inprogress_save_seconds:g}, or running processes' "
                              f"games would be taken from them")

    @property
    def feature_version(self) -> int:
        from zeroloop.features import NAMES

        return NAMES[self.features]

    @property
    def max_board_size(self) -> int:
        return max(self.board_sizes)

    def max_moves(self, size: int) -> int:
        return max(1, int(round(self.max_moves_per_area * size * size)))

    def search_params(self) -> SearchParams:
        from zeroloop.search.batch import SearchParams  # numpy: kept out of a light import of the settings

        return SearchParams(
            cpuct=self.cpuct,
            fpu_reduction=self.fpu_reduction,
            root_fpu_reduction=self.root_fpu_reduction,
            forced_playouts_coeff=self.forced_playouts_coeff,
            score_utility_factor=self.score_utility_factor,
            dirichlet_alpha_total=self.dirichlet_alpha_total,
            dirichlet_weight=self.dirichlet_weight,
            random_symmetry=self.random_symmetry,
            shaped_noise=self.shaped_dirichlet_noise,
            fpu_parent_weight_pow=self.fpu_parent_weight_by_visited_policy_pow,
            dynamic_score_utility_factor=self.dynamic_score_utility_factor,
            dynamic_score_center_zero_weight=self.dynamic_score_center_zero_weight,
            dynamic_score_center_scale=self.dynamic_score_center_scale,
            subtree_value_bias_factor=self.subtree_value_bias_factor,
            subtree_value_bias_exponent=self.subtree_value_bias_exponent,
            use_lcb=self.lcb_policy_target,
        )


def load(path_or_name: str | None, overrides: dict | None = None) -> SelfplayConfig:
    """The config from a file, a packaged name ('cpu', 'gpu'), or the defaults (None)."""
    return cfg.load(SelfplayConfig, path_or_name, overrides, packaged=PACKAGED)
