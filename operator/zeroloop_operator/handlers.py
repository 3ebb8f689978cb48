"""The kopf handlers: thin glue between kopf's events and ``reconcile``.

- create, resume and update of a TrainingRun run one idempotent reconcile
  (``reconcile.ensure_children``) and write the status it leads to;
- a timer per run (every ``status_interval`` seconds) re-reads the
  children, re-creates any that went missing, and writes status and
  progress (from the pods' metrics), only if the run is unchanged since
  the round read it (a JSON-patch test of its resourceVersion), so a slow
  round never overwrites what reconcile wrote meanwhile. A write the API
  server refuses for good (the version unchanged) is a warning in the log
  each round and one Warning event (reason StatusRefused) per refusal.

A spec the schema accepted but the operator cannot run gets a Degraded
condition and a Warning Event, and the handler returns normally: no retry
loop, nothing touched until the spec changes. The same holds when the API
server refuses a child for good (400, 403, 422: e.g. a toleration with
``operator: Equal`` and no key, which the CRD admits but core Kubernetes
does not): Degraded with the API server's message (reason APIRejected), a
Warning event, and no retries, not even by the refresh timer, until the
spec changes. Temporary API errors (no answer, 409, 429, 5xx) raise
``kopf.TemporaryError`` with a delay that doubles on every retry, from
``retry_delay`` up to ``MAX_RETRY_DELAY``; the reconcile is idempotent, so
any retry converges.

Conditions and ``status.observedGeneration`` always name the generation
that reconcile last acted on; the refresh timer never advances either.

kopf keeps its bookkeeping in annotations under ``zeroloop.io/`` (the
status has a schema; a real API server would drop undeclared status
fields) and its finalizer is ``zeroloop.io/finalizer`` (timers need one so
they stop before the run goes). Deletion itself needs no handler: children
carry ownerReferences and Kubernetes' garbage collector removes them;
a retained claim has none and stays.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from zeroloop_operator import naming, reconcile, runstatus
from zeroloop_operator import spec as runspec
from zeroloop_operator.config import OperatorConfig
from zeroloop_operator.kube import ApiError, Kube

FINALIZER = "zeroloop.io/finalizer"
ANNOTATION_PREFIX = "zeroloop.io"
MAX_RETRY_DELAY = 300.0  # seconds: the cap of the doubling retry delay
STATUS_REFUSAL = "status_refusal"  # per-run memo key: the refusal of the timer's status write last evented


def retry_delay(first: float, retry: int) -> float:
    """Delay before retry number retry+1 after temporary API errors: first, doubled each time, capped."""
    return min(first * 2.0 ** min(retry, 32), max(first, MAX_RETRY_DELAY))


def now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf settings for zeroloop: annotation bookkeeping, our finalizer, one replica."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # Events for warnings only, not every handler run
    settings.peering.standalone = True  # one operator replica (the chart's Deployment uses Recreate)
    settings.scanning.disabled = True  # no cluster-wide CRD/namespace watching (least privilege)
    settings.execution.max_workers = config.workers
    # A timer caught mid-refresh (blocking HTTP in a thread) gets time to finish on shutdown.
    settings.background.instant_exit_timeout = 5.0


def _run_ref(meta: Any) -> naming.RunRef:
    return naming.RunRef(meta["name"], meta["namespace"], meta["uid"])


def _generation(meta: Any) -> int:
    return int(meta.get("generation") or 0)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Register zeroloop's handlers (and settings, login) into a kopf registry."""
    resource = (naming.GROUP, naming.VERSION, naming.PLURAL)

    @kopf.on.startup(registry=registry, id="configure")
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, config)

    @kopf.on.login(registry=registry, id="login")
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # Also configures the kubernetes package that ``Kube`` uses.
        return kopf.login_via_client(**kwargs)

    # One handler id for the three causes: kopf's annotations read zeroloop.io/reconcile.
    @kopf.on.resume(*resource, registry=registry, id="reconcile", backoff=config.retry_delay)
    @kopf.on.create(*resource, registry=registry, id="reconcile", backoff=config.retry_delay)
    @kopf.on.update(*resource, registry=registry, id="reconcile", backoff=config.retry_delay)
    def reconcile_run(body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                      patch: kopf.Patch, logger: logging.Logger, retry: int = 0, **_: Any) -> None:
        run = _run_ref(meta)
        kube = Kube(timeout=config.api_timeout)
        try:
            parsed = runspec.parse(dict(spec), run.name)
            actions = reconcile.ensure_children(kube, run, parsed)
            observed = reconcile.observe(kube, run, parsed)
        except runspec.SpecError as e:
            patch.status.update(runstatus.invalid(e.problems, _generation(meta), dict(status), now_text()))
            kopf.warn(body, reason="InvalidSpec", message=str(e))
            logger.warning("invalid spec, nothing changed: %s", e)
            return
        except ApiError as e:
            if e.permanent:
                message = f"the API server refused {e}; nothing is retried until the spec changes"
                patch.status.update(runstatus.invalid([message], _generation(meta), dict(status), now_text(),
                                                      reason=runstatus.API_REJECTED))
                kopf.warn(body, reason=runstatus.API_REJECTED, message=message)
                logger.warning("%s", message)
                return
            delay = retry_delay(config.retry_delay, retry)
            raise kopf.TemporaryError(f"Kubernetes API error, retrying in {delay:g} s: {e}", delay=delay)
        except reconcile.ChildConflict as e:
            patch.status.update(runstatus.invalid([str(e)], _generation(meta), dict(status), now_text(),
                                                  reason="ChildConflict"))
            kopf.warn(body, reason="ChildConflict", message=str(e))
            raise kopf.TemporaryError(str(e), delay=config.conflict_delay)
        patch.status.update(reconcile.status_fields(run, parsed, observed, _generation(meta), dict(status),
                                                     now_text()))
        created = sorted(k for k, v in actions.items() if v == "created")
        if created:
            kopf.info(body, reason="Created", message="created " + ", ".join(created))
        logger.info("reconciled: %s", ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))

    @kopf.timer(*resource, registry=registry, id="refresh", interval=config.status_interval, initial_delay=1.0,
                sharp=False)
    def refresh_run(body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, stopped: kopf.DaemonStopped,
                    logger: logging.Logger, **_: Any) -> None:
        run = _run_ref(meta)
        kube = Kube(timeout=config.api_timeout)
        now = now_text()
        try:
            # Read the run afresh: the progress counters must build on the last one written.
            fresh = kube.get("TrainingRun", run.namespace, run.name)
            if fresh is None:
                return
            status = fresh.get("status") or {}
            # Conditions say which generation they describe: the one reconcile last acted on.
            generation = int(status.get("observedGeneration") or 0)
            try:
                parsed = runspec.parse(fresh.get("spec") or {}, run.name)
            except runspec.SpecError as e:
                fields = runstatus.invalid(e.problems, generation, status, now)
            else:
                fields = _observe_and_summarise(kube, run, parsed, generation, status, now, logger)
        except (ApiError, reconcile.ChildConflict, runspec.SpecError) as e:
            logger.warning("status refresh skipped: %s", e)
            return
        if stopped:  # the operator is stopping (kopf cannot cancel a thread): no write may outlive it
            logger.debug("status refresh abandoned: the operator is stopping")
            return
        # observedGeneration says what reconcile acted on: only reconcile advances it.
        fields.pop("observedGeneration", None)
        # Written only if nothing wrote the run since it was read: reconcile may have set Degraded (or a new
        # generation's conditions) while this round scraped the pods, and a stale round must not undo that.
        try:
            kube.patch_status_if_unchanged("TrainingRun", run.namespace, run.name,
                                           (fresh.get("metadata") or {}).get("resourceVersion", ""), status, fields)
        except ApiError as e:
            # 422 is also how an API server refuses a status it will not store: only a moved version is a race
            if e.status in (409, 422) and _moved(kube, run, fresh):
                logger.info("status refresh dropped: the run changed while it was read; the next round writes it")
            else:
                logger.warning("status refresh not written: %s", e)
                if e.permanent and memo.get(STATUS_REFUSAL) != str(e):
                    # Timers' logs post no Events: say it on the run, once per refusal, not every round.
                    memo[STATUS_REFUSAL] = str(e)
                    kopf.warn(body, reason="StatusRefused",
                              message=f"the API server refused the run's status, which stays as it was: {e}")
            return
        memo.pop(STATUS_REFUSAL, None)

    def _moved(kube: Kube, run: naming.RunRef, read: dict[str, Any]) -> bool:
        """Whether the run's resourceVersion is no longer the one read (or the run cannot be read now)."""
        try:
            now = kube.get("TrainingRun", run.namespace, run.name)
        except ApiError:
            return True
        version = lambda o: ((o or {}).get("metadata") or {}).get("resourceVersion")  # noqa: E731
        return now is None or version(now) != version(read)

    def _observe_and_summarise(kube: Kube, run: naming.RunRef, parsed: runspec.RunSpec, generation: int,
                               status: dict[str, Any], now: str, logger: logging.Logger) -> dict[str, Any]:
        observed = reconcile.observe(kube, run, parsed)
        rejected = runstatus.rejection(status)
        # Re-create what went missing, once reconcile has acted on this run at all (and the API
        # server has not refused this spec: that waits for a spec change).
        if status.get("observedGeneration") and rejected is None:
            missing = reconcile.missing_children(kube, run, parsed, observed)
            if missing:
                logger.warning("re-creating missing children: %s", ", ".join(missing))
                reconcile.ensure_children(kube, run, parsed)
                observed = reconcile.observe(kube, run, parsed)
        fields = reconcile.status_fields(run, parsed, observed, generation, status, now)
        if rejected is not None:
            fields.update(runstatus.invalid([rejected["message"]], generation, fields, now,
                                            reason=runstatus.API_REJECTED))
        scraped = reconcile.progress_fields(kube, run, parsed, status.get("progress"), now, config.scrape_timeout,
                                            deadline=config.scrape_deadline)
        if scraped is not None:
            fields["progress"], readable = scraped
            fields["conditions"] = runstatus.with_condition(fields, readable, generation, now)
        else:  # metrics off: no progress, so no claim about reading it
            fields["conditions"] = [c for c in fields["conditions"] if c.get("type") != "MetricsReadable"]
        return fields
