"""The training loop: KataGo's train.py main loop, resumable at any batch.

Before each epoch the trainer reloads the newest shuffle (a new
``shuffle_id`` fills the train bucket and queues its files), chooses the
epoch's files, and asks the bucket; then it trains batch by batch, updating
the averaged model every ``swa_period_samples``. After the epoch it exports
the averaged model every ``epochs_per_export`` epochs and checkpoints.

Everything a restart needs is in ``TrainState`` (bucket, file plan, the
epoch's position, the random generator, metric sums) and goes into every
checkpoint with the model, averaged model and optimizer. Checkpoints are
written after each epoch, every ``checkpoint_interval_seconds`` inside an epoch,
and on SIGTERM/SIGINT (after the step in flight). A restart from any of
them makes the same choices as a run that never stopped.

It never waits silently: waiting for data or for the bucket is logged with
what it waits for (and the path), and ``--quit-if-no-data`` /
``--stop-when-train-bucket-limited`` turn those waits into a clean exit.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import posixpath
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from zeroloop import exits, metrics, runtime, shuffled
from zeroloop.errors import DataFileError, ModelFileError, UserError
from zeroloop.nn import modelfile
from zeroloop.nn.configs import NetConfig, get_config
from zeroloop.nn.model import Net
from zeroloop.storage import BaseDir, open_location
from zeroloop.train import bucket as bucketmod
from zeroloop.train import checkpoint, data, files, losses, optim
from zeroloop.train.options import TrainOptions
from zeroloop.train.progress import JSONL_NAME, Reporter, RunningSums

log = logging.getLogger(__name__)

WAIT_LOG_EVERY_S = 300.0


class Blocked(NamedTuple):
    """Why the next epoch cannot start: ``kind`` "stop" (a --stop-when-* limit), "nodata" or "wait";
    ``reason`` the ``exits`` stop reason for "stop" and "nodata"."""

    kind: str
    why: str
    reason: str = ""


@dataclass
class TrainState:
    """All of training's progress that is not a tensor (JSON in the checkpoint)."""

    bucket: bucketmod.Bucket
    global_step_samples: int = 0
    total_num_data_rows: int = 0
    steps_since_reload: int = 0
    export_cycle_counter: int = 0
    epochs_done: int = 0
    last_swa_samples: int = 0
    plan: files.FilePlan = field(default_factory=files.FilePlan)
    epoch: files.Epoch | None = None
    rng: dict = field(default_factory=dict)
    sums: RunningSums = field(default_factory=RunningSums)

    def to_json(self) -> str:
        return json.dumps({
            "bucket": self.bucket.to_dict(), "global_step_samples": self.global_step_samples,
            "total_num_data_rows": self.total_num_data_rows, "steps_since_reload": self.steps_since_reload,
            "export_cycle_counter": self.export_cycle_counter, "epochs_done": self.epochs_done,
            "last_swa_samples": self.last_swa_samples, "plan": self.plan.to_dict(),
            "epoch": None if self.epoch is None else self.epoch.to_dict(), "rng": self.rng,
            "sums": self.sums.to_dict(),
        })

    @classmethod
    def from_json(cls, text: str) -> "TrainState":
        d = json.loads(text)
        return cls(bucketmod.Bucket.from_dict(d["bucket"]), int(d["global_step_samples"]),
                   int(d["total_num_data_rows"]), int(d["steps_since_reload"]), int(d["export_cycle_counter"]),
                   int(d["epochs_done"]), int(d["last_swa_samples"]), files.FilePlan.from_dict(d["plan"]),
                   None if d["epoch"] is None else files.Epoch.from_dict(d["epoch"]), dict(d["rng"]),
                   RunningSums.from_dict(d["sums"]))


def _new_rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


def _rng_from_state(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def check_precision(opts: TrainOptions, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: float32); UserError if the device lacks it."""
    if opts.use_fp16 and opts.use_bf16:
        raise UserError("--use-fp16 and --use-bf16 exclude each other")
    if opts.use_fp16:
        if device.type != "cuda":
            raise UserError(f"--use-fp16 needs a CUDA device; this run uses {device} (leave the flag out on CPU)")
        return torch.float16
    if opts.use_bf16:
        if device.type == "cuda":
            if not torch.cuda.is_bf16_supported():
                raise UserError(f"--use-bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support")
        elif not cpu_has_native_bf16():
            raise UserError("--use-bf16: this CPU has no native bfloat16 (no avx512_bf16/amx_bf16); "
                            "it would run several times slower than float32")
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Trainer:
    """One training run over a BASEDIR (``run()`` returns the exit status)."""

    def __init__(self, base: BaseDir, opts: TrainOptions, stop: threading.Event | None = None):
        self.base = base
        self.opts = opts
        self.stop = stop or threading.Event()
        self.storage = base.storage
        self.traindir = base.train(opts.name)
        self.device = runtime.resolve_device(opts.device)
        self.autocast_dtype = check_precision(opts, self.device)
        self.rule = opts.bucket_rule
        self.state = TrainState(bucketmod.Bucket.initial(self.rule))
        self.rng = _new_rng(opts.seed)
        self.model: Net | None = None
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.lookahead: optim.Lookahead | None = None
        self.loss_weights = losses.LossWeights.for_options(opts.soft_policy_weight, opts.td_value_weight)
        self.scaler: torch.amp.GradScaler | None = None
        self.summary: shuffled.ShuffleSummary | None = None
        self.reporter: Reporter | None = None
        self.epochs_this_instance = 0
        self._last_checkpoint = time.monotonic()
        self._wait_logged: tuple[str, float] | None = None
        self._saved_state: str | None = None  # train state of the last checkpoint written or loaded

    # --- model, optimizer, checkpoints ------------------------------------

    def _build(self, config: NetConfig, pos_len: int) -> None:
        if self.opts.soft_policy_weight > 0 and not config.soft_policy:
            config = dataclasses.replace(config, soft_policy=True)  # a net from before gains the head
            log.info("net %s gains a soft policy head (--soft-policy-weight)", config.name)
        if self.opts.td_value_weight > 0 and not config.td_value:
            config = dataclasses.replace(config, td_value=True)
            log.info("net %s gains TD value heads (--td-value-weight)", config.name)
        self.model = Net(config, pos_len).to(self.device)
        self.averaged = optim.build_averaged(self.model, self.opts.swa_scale)
        self.optimizer = optim.build_optimizer(self.opts.optimizer, self.model, self.opts.batch_size,
                                               self.opts.weight_decay, self.opts.weight_decay_mode)
        self.lookahead = (optim.Lookahead(self.model, self.opts.lookahead_k, self.opts.lookahead_alpha)
                          if self.opts.lookahead_alpha < 1.0 else None)
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None

    def _load_weights(self, module: torch.nn.Module, state: dict) -> None:
        """load_state_dict, letting a net from before a training-only head (soft policy, TD value) leave
        that head as initialised."""
        missing, unexpected = module.load_state_dict(state, strict=False)
        fresh = [k for k in missing if "soft_policy_head." in k or "td_value_head." in k]
        if unexpected or len(fresh) != len(missing):
            raise RuntimeError(f"missing {sorted(set(missing) - set(fresh))[:3]}, unexpected {sorted(unexpected)[:3]}")
        for head in (h for h in ("soft_policy_head", "td_value_head") if any(f"{h}." in k for k in fresh)):
            log.info("the %s starts fresh (%s has none)", head.replace("_", " "),
                     "the checkpoint" if module is self.model else "its averaged model")

    def _load_optimizer(self, payload: dict) -> None:
        """The optimizer's state and lookahead's, or (with a warning) fresh ones where they do not fit."""
        assert self.optimizer is not None
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError) as e:
            log.warning("optimizer state not reused (%s): momentum starts from zero", str(e).splitlines()[0])
        if self.lookahead is not None and payload.get("lookahead"):
            try:
                self.lookahead.load_state_dict(payload["lookahead"])
            except (ValueError, KeyError) as e:
                log.warning("lookahead state not reused (%s)", e)

    def _payload(self) -> dict:
        assert self.model is not None and self.averaged is not None and self.optimizer is not None
        self.state.rng = self.rng.bit_generator.state
        return {
            "net_config": json.dumps(self.model.config.to_dict()),
            "pos_len": self.model.pos_len,
            "optimizer_kind": self.opts.optimizer,
            "model": self.model.state_dict(),
            "averaged": self.averaged.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lookahead": self.lookahead.state_dict() if self.lookahead is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "train_state": self.state.to_json(),
        }

    def save_checkpoint(self) -> None:
        if self.model is None:
            return
        checkpoint.save(self.storage, self.traindir, self._payload())
        self._last_checkpoint = time.monotonic()
        self._saved_state = self.state.to_json()
        log.info("checkpoint saved: %d samples, epoch %d, bucket %.0f", self.state.global_step_samples,
                 self.state.epochs_done, self.state.bucket.level)

    def _config_of(self, payload: dict, where: str) -> tuple[NetConfig, int]:
        try:
            return NetConfig.from_dict(json.loads(payload["net_config"])), int(payload["pos_len"])
        except (KeyError, ValueError, TypeError) as e:
            raise ModelFileError(f"{where}: bad net config ({e})") from None

    def _check_features(self, config: NetConfig, what: str) -> None:
        if config.features != self.opts.feature_version:
            raise ModelFileError(f"{what} reads input feature version {config.features}, this training was asked "
                                 f"for version {self.opts.feature_version} (--features): the net would misread its inputs")

    def _resume(self) -> bool:
        """Load train/<name>/checkpoint.ckpt (or a prev) if any; True if resumed."""
        found = checkpoint.load_latest(self.storage, self.traindir)
        if found is None:
            return False
        payload, path = found
        config, pos_len = self._config_of(payload, path)
        self._check_features(config, f"checkpoint {path}")
        if config.name != self.opts.model_kind:
            log.warning("checkpoint %s holds a %s net; --model-kind %s is ignored", path, config.name,
                        self.opts.model_kind)
        if payload.get("optimizer_kind") != self.opts.optimizer:
            raise UserError(f"checkpoint {path} was trained with --optimizer {payload.get('optimizer_kind')}, "
                            f"not {self.opts.optimizer}")
        self._build(config, pos_len)
        assert self.model is not None and self.averaged is not None and self.optimizer is not None
        try:
            self._load_weights(self.model, payload["model"])
            self._load_weights(self.averaged, payload["averaged"])
            self._load_optimizer(payload)
            if self.scaler is not None and payload.get("scaler"):
                self.scaler.load_state_dict(payload["scaler"])
            self.state = TrainState.from_json(payload["train_state"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise ModelFileError(f"{path}: does not match its net config ({str(e).splitlines()[0]})") from None
        self.rng = _rng_from_state(self.state.rng)
        self._saved_state = self.state.to_json()
        log.info("resumed from %s: %d samples, %d epochs, bucket %.0f, %s", path, self.state.global_step_samples,
                 self.state.epochs_done, self.state.bucket.level,
                 "mid-epoch" if self.state.epoch is not None else "between epochs")
        return True

    def _start_fresh(self, pos_len: int) -> None:
        """A new net: from --initial-checkpoint (checkpoint file or model dir) or --model-kind."""
        src = self.opts.initial_checkpoint
        if src is None:
            config = dataclasses.replace(get_config(self.opts.model_kind), features=self.opts.feature_version)
            self._build(config, pos_len)
            log.info("new %s net for pos_len %d (feature version %d)", self.opts.model_kind, pos_len,
                     self.opts.feature_version)
            return
        storage, path = open_location(src)
        if storage.fs.isdir(path):
            net, info = modelfile.load_model(storage, path, "cpu")
            self._check_features(info.config, f"model {path}")
            self._build(info.config, info.pos_len)
            assert self.model is not None and self.averaged is not None
            self._load_weights(self.model, net.state_dict())
            self._load_weights(self.averaged.module, net.state_dict())
            log.info("starting from model %s (%s, %d samples)", path, info.config.name, info.samples_trained)
        else:
            payload = checkpoint.load_file(storage, path)
            config, ckpt_pos_len = self._config_of(payload, path)
            self._check_features(config, f"checkpoint {path}")
            self._build(config, ckpt_pos_len)
            assert self.model is not None and self.averaged is not None
            try:
                self._load_weights(self.model, payload["model"])
                self._load_weights(self.averaged, payload["averaged"])
            except (KeyError, RuntimeError) as e:
                raise ModelFileError(f"{path}: does not match its net config ({str(e).splitlines()[0]})") from None
            log.info("starting from checkpoint %s (%s)", path, config.name)

    # --- data ---------------------------------------------------------------

    def _wait(self, what: str) -> None:
        """Log what training waits for (first time, then every few minutes) and wait a poll."""
        now = time.monotonic()
        if self._wait_logged is None or self._wait_logged[0] != what or now - self._wait_logged[1] > WAIT_LOG_EVERY_S:
            log.info("waiting: %s (checking every %.0fs)", what, self.opts.data_poll_seconds)
            self._wait_logged = (what, now)
        self.stop.wait(self.opts.data_poll_seconds)

    def _reload_data(self) -> shuffled.ShuffleSummary | None:
        """The newest shuffle, with the bucket and queue updated if it is new."""
        latest = shuffled.latest_dir(self.base)
        if latest is None:
            return None
        try:
            summary = shuffled.read_summary(self.base, latest)
        except DataFileError as e:
            log.warning("ignoring shuffle: %s", e)
            return None
        name = posixpath.basename(latest)
        st = self.state
        if summary.shuffle_id != st.plan.shuffle_id:
            st.bucket = bucketmod.on_new_data(st.bucket, self.rule, summary.total_data_rows)
            st.total_num_data_rows = summary.total_data_rows
            st.steps_since_reload = 0
            st.plan = files.on_new_shuffle(st.plan, name, summary, self.rng)
            log.info("new shuffled data %s: %d rows in %d files, %d data rows in all, bucket %.0f",
                     latest, summary.num_rows, len(summary.files), summary.total_data_rows, st.bucket.level)
        elif name != st.plan.shuffle_dir:
            st.plan = files.FilePlan(name, st.plan.shuffle_id, st.plan.queue, st.plan.history)
        shuffled.mark_in_use(self.base, self.opts.name, latest)
        metrics.metric("zeroloop_train_data_rows").set(st.total_num_data_rows)
        metrics.metric("zeroloop_train_bucket_samples").set(st.bucket.level)
        return summary

    def _begin_epoch(self) -> Blocked | None:
        """Set up the next epoch; None if done, else why not."""
        summary = self._reload_data()
        where = self.base.shuffleddata
        if summary is None:
            return Blocked("nodata", f"no shuffled data yet in {where} (a complete shuffle with "
                           f"{shuffled.SUMMARY_NAME})", exits.NO_SHUFFLE)
        if self.model is None:
            self._start_fresh(self.opts.pos_len or summary.pos_len)
        assert self.model is not None
        if summary.pos_len != self.model.pos_len:
            raise UserError(f"shuffle {self.state.plan.shuffle_dir} has pos_len {summary.pos_len} but the net "
                            f"has pos_len {self.model.pos_len}")
        st, opts = self.state, self.opts
        trial = copy.deepcopy(self.rng)
        dir_files = [files.FileRef.of(f) for f in summary.files]
        choice = files.choose_epoch(st.plan, dir_files, opts.samples_per_epoch / opts.batch_size,
                                    opts.batch_size, trial, opts.no_repeat_files)
        if choice is None:
            return Blocked("nodata", f"not enough unused shuffled rows in {where}/{st.plan.shuffle_dir} for an "
                           f"epoch of {opts.samples_per_epoch} samples at batch {opts.batch_size}"
                           + (" (--no-repeat-files)" if opts.no_repeat_files else ""), exits.SHUFFLE_USED_UP)
        if not bucketmod.can_take_epoch(st.bucket, self.rule):
            if opts.stop_when_train_bucket_limited:
                return Blocked("stop", f"train bucket limited ({st.bucket.level:.0f} samples, an epoch needs "
                               f"{opts.samples_per_epoch}): stopping (--stop-when-train-bucket-limited)",
                               exits.BUCKET_LIMITED)
            return Blocked("wait", f"train bucket limited ({st.bucket.level:.0f} samples, an epoch needs "
                           f"{opts.samples_per_epoch}): waiting for more data rows in {where}")
        limit = opts.max_train_steps_since_last_reload
        if limit is not None and st.steps_since_reload + 0.99 * opts.samples_per_epoch > limit:
            if opts.stop_when_train_bucket_limited:
                return Blocked("stop", f"{st.steps_since_reload} samples trained since the last new shuffle "
                               f"(--max-train-steps-since-last-reload {limit}): stopping", exits.RELOAD_LIMITED)
            return Blocked("wait", f"{st.steps_since_reload} samples trained since the last new shuffle "
                           f"(--max-train-steps-since-last-reload {limit}): waiting for a new shuffle in {where}")
        chosen, st.plan = choice
        self.rng = trial
        st.bucket = bucketmod.take_epoch(st.bucket, self.rule)
        st.epoch = files.Epoch(st.plan.shuffle_dir or "", chosen)
        batches = sum(f.rows // opts.batch_size for f in chosen)
        log.info("epoch %d: %d files, %d batches of %d, bucket now %.0f", st.epochs_done + 1, len(chosen),
                 batches, opts.batch_size, st.bucket.level)
        metrics.metric("zeroloop_train_bucket_samples").set(st.bucket.level)
        self._wait_logged = None
        return None

    # --- training -------------------------------------------------------------

    def train_step(self, batch: data.DeviceBatch) -> dict[str, float]:
        """One optimizer step; returns each loss term summed over the batch."""
        assert self.model is not None and self.optimizer is not None
        self._set_hyperparameters()
        self.model.train()
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else contextlib.nullcontext())
        with autocast:
            soft, td = self.opts.soft_policy_weight > 0, self.opts.td_value_weight > 0
            if soft or td:
                out = self.model.forward_train(batch.spatial, batch.glob)
                terms = losses.loss_terms(out.outputs, batch.targets, soft_logits=out.soft_policy if soft else None,
                                          td_value=out.td_value if td else None, td_score=out.td_score if td else None)
            else:
                terms = losses.loss_terms(self.model(batch.spatial, batch.glob), batch.targets)
            total = losses.total_loss(terms, self.loss_weights)
        self.optimizer.zero_grad(set_to_none=True)
        clip = optim.grad_clip_norm(self.opts.batch_size)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        if self.lookahead is not None:
            self.lookahead.after_step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def _learning_rate(self, samples: int) -> float:
        o = self.opts
        return (optim.learning_rate(o.optimizer, samples, o.lr_scale, o.lr_warmup_samples)
                * optim.schedule_factor(samples, o.lr_schedule))

    def _set_hyperparameters(self) -> None:
        assert self.optimizer is not None
        o, samples = self.opts, self.state.global_step_samples
        factor = o.lr_scale * optim.schedule_factor(samples, o.lr_schedule) * optim.warmup_factor(
            samples, o.lr_warmup_samples)
        decays = optim.weight_decays(o.optimizer, o.weight_decay_mode, o.batch_size, o.weight_decay, factor)
        optim.set_hyperparameters(self.optimizer, self._learning_rate(samples), decays, o.head_lr_scale,
                                  o.lookahead_alpha)

    def _after_step(self, terms: dict[str, float], rows: int) -> None:
        st = self.state
        st.global_step_samples += rows
        st.steps_since_reload += rows
        if st.global_step_samples - st.last_swa_samples >= self.opts.swa_period:
            assert self.averaged is not None and self.model is not None
            self.averaged.update_parameters(self.model)
            st.last_swa_samples = st.global_step_samples
        metrics.metric("zeroloop_train_samples_total").inc(rows)
        metrics.metric("zeroloop_train_global_step_samples").set(st.global_step_samples)
        assert self.reporter is not None
        if self.reporter.add(terms, rows):
            lr = self._learning_rate(st.global_step_samples)
            metrics.metric("zeroloop_train_learning_rate").set(lr)
            ep = st.epoch
            position = {}
            if ep is not None:  # the last batch trained: shows that no batch repeats or goes missing
                position = {"file": ep.files[ep.file_index].id, "batch": ep.batch_index - 1}
            done = ep.samples / self.opts.samples_per_epoch if ep else 0.0
            self.reporter.report({"samples": st.global_step_samples, "data_rows": st.total_num_data_rows,
                                  "epoch": st.epochs_done + done, "bucket": st.bucket.level, "lr": lr,
                                  **position})

    def _train_epoch(self) -> bool:
        """Train the rest of the current epoch; True if it finished (False: stopped)."""
        st = self.state
        assert st.epoch is not None and self.model is not None
        shuffle_dir = posixpath.join(self.base.shuffleddata, st.epoch.shuffle_dir)
        source = data.epoch_batches(self.storage, shuffle_dir, st.epoch, self.opts.batch_size,
                                    self.model.pos_len, pin=self.device.type == "cuda",
                                    feature_version=self.model.config.features)
        prefetch = data.Prefetcher(source, self.opts.prefetch_batches)
        try:
            for hb in prefetch:
                sym = int(self.rng.integers(0, 8))
                terms = self.train_step(data.to_device(hb, self.device, sym, self.model.pos_len))
                st.epoch = files.Epoch(st.epoch.shuffle_dir, st.epoch.files, hb.file_index, hb.batch_index + 1,
                                       st.epoch.samples + self.opts.batch_size)
                self._after_step(terms, self.opts.batch_size)
                if self.stop.is_set():
                    return False
                if time.monotonic() - self._last_checkpoint >= self.opts.checkpoint_interval_seconds:
                    shuffled.mark_in_use(self.base, self.opts.name, shuffle_dir)
                    self.save_checkpoint()
        finally:
            prefetch.close()
        return True

    def _end_epoch(self) -> None:
        st = self.state
        st.epochs_done += 1
        st.export_cycle_counter += 1
        trained = st.epoch.samples if st.epoch else 0
        st.epoch = None
        assert self.reporter is not None
        self.reporter.event({"event": "epoch", "epoch": st.epochs_done, "samples": st.global_step_samples,
                             "epoch_samples": trained, "bucket": st.bucket.level})
        if trained == 0:
            log.warning("epoch %d trained nothing (its files were unreadable): not exporting", st.epochs_done)
        elif st.export_cycle_counter >= self.opts.epochs_per_export:
            st.export_cycle_counter = 0
            if self.opts.export_mode != "trainonly":
                self.export()
        self.save_checkpoint()
        self.epochs_this_instance += 1

    def export_name(self) -> str:
        return f"{self.opts.name}-s{self.state.global_step_samples}-d{self.state.total_num_data_rows}"

    def export(self) -> str | None:
        """Publish the averaged model to torchmodels_toexport[_extra]/<name>-s<S>-d<D>/."""
        assert self.averaged is not None
        name = self.export_name()
        target = posixpath.join(self.base.toexport(self.opts.export_mode == "extra"), name)
        if self.storage.exists(target):
            log.info("export %s already exists", target)
            return None
        self.storage.makedirs(posixpath.dirname(target))
        net = copy.deepcopy(self.averaged.module).to("cpu").eval()
        info = modelfile.ModelInfo.for_model(net, name, self.state.global_step_samples, self.state.total_num_data_rows,
                                             extra={"training_name": self.opts.name, "averaged": True,
                                                    "epochs": self.state.epochs_done})
        modelfile.save_model(self.storage, target, net, info)
        self.state.sums.exports += 1
        metrics.metric("zeroloop_train_exports_total").inc()
        assert self.reporter is not None
        self.reporter.event({"event": "export", "name": name, "samples": self.state.global_step_samples})
        log.info("exported %s", target)
        return target

    def _done_by_limits(self) -> exits.StopRecord | None:
        """Why this instance has trained enough, or None."""
        o, st = self.opts, self.state
        if o.max_epochs_this_instance is not None and self.epochs_this_instance >= o.max_epochs_this_instance:
            return exits.StopRecord(exits.LIMIT_REACHED, f"finished {self.epochs_this_instance} epochs this "
                                    "instance (--max-epochs-this-instance)")
        if o.max_training_samples is not None and st.global_step_samples >= o.max_training_samples:
            return exits.StopRecord(exits.LIMIT_REACHED,
                                    f"reached {st.global_step_samples} samples (--max-training-samples)")
        return None

    def run(self) -> int:
        self.storage.makedirs(self.traindir)
        # half-written checkpoints and exports of an instance that was killed
        for d in (self.traindir, self.base.toexport(False), self.base.toexport(True)):
            self.storage.sweep_tmp(d)
        if not self._resume() and self.opts.initial_checkpoint is not None:
            self._start_fresh(self.opts.pos_len or 0)  # a bad --initial-checkpoint fails now, not after data arrives
        jsonl = posixpath.join(self.traindir, JSONL_NAME) if self.storage.local else None
        if jsonl is None:
            log.warning("BASEDIR is not a local filesystem: no %s (metrics go to Prometheus only)", JSONL_NAME)
        self.reporter = Reporter(jsonl, self.state.sums, self.opts.print_every_batches)
        metrics.metric("zeroloop_train_bucket_samples").set(self.state.bucket.level)
        metrics.metric("zeroloop_train_global_step_samples").set(self.state.global_step_samples)
        stopped: exits.StopRecord | None = None  # why the trainer stops on its own
        while not self.stop.is_set():
            if self.state.epoch is None:
                stopped = self._done_by_limits()
                if stopped is not None:
                    break
                blocked = self._begin_epoch()
                if blocked is not None:
                    if blocked.kind == "stop":
                        stopped = exits.StopRecord(blocked.reason, blocked.why)
                        break
                    if blocked.kind == "nodata" and self.opts.quit_if_no_data:
                        stopped = exits.StopRecord(blocked.reason, f"{blocked.why}: quitting (--quit-if-no-data)")
                        break
                    self._wait(blocked.why)
                    continue
            if not self._train_epoch():
                break
            self._end_epoch()
        self.state.rng = self.rng.bit_generator.state
        if self.state.to_json() != self._saved_state:
            self.save_checkpoint()
        if self.stop.is_set():
            stopped = exits.StopRecord(exits.SIGNALLED,
                                       f"stopped by signal after {self.state.global_step_samples} samples")
        if stopped is not None:
            log.info("%s", stopped.message)
            exits.write_stop(self.storage, self.base.train_stop(self.opts.name), stopped)
        return exits.OK


def set_stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT: finish the step in flight, checkpoint, exit 0."""
    import signal

    def handler(signum, frame):  # noqa: ARG001
        log.info("received %s: finishing the current step, then checkpointing", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

