"""Pod templates of a run's components: the stage command lines and pod security.

Each component's container runs one `zeroloop` stage command on the shared
volume, mounted at ``/data`` with BASEDIR ``/data/<run name>`` (so several
runs can share one existing claim). The command lines come from the run
plan (``zeroloop.plan``, through ``stageconfig.describe``), the same that
the local loop starts its stages with.

Pods are locked down: non-root user 10001 (the image's user), read-only root
filesystem, no privilege escalation, every capability dropped, seccomp
RuntimeDefault, fsGroup 10001 so the volume is writable, no service-account
token (stages never call the Kubernetes API): the restricted Pod Security
Standard. The exception is ``storage.setOwnership``: its init container runs
as root with CHOWN and FOWNER, so such pods meet only baseline. The writable places are the
volume and an emptyDir at ``/scratch`` holding HOME, TMPDIR and the numba
and torch-inductor caches (so a restarted container does not compile again);
the trainer also gets a memory-backed ``/dev/shm`` for data-loader workers.

Grace periods cover each stage's flush on SIGTERM: self-play lets its
searches finish for min(5 s, grace / 3) (``stageconfig``), writes finished
games and saves games in progress (about a second for 256 19x19 games), so
it needs about 7 s of its 60 s default, and fits GKE Spot's ~15 s too; it
also saves every 30 s, for SIGKILLs. The trainer writes a checkpoint (120 s). Probes hit the metrics endpoint; a
generous startup probe covers model loading and first compilation.
"""

from __future__ import annotations

from typing import Any

from zeroloop import layout, plan
from zeroloop_operator import naming, stageconfig
from zeroloop_operator.spec import GPU_RESOURCE, Pods, RunSpec, quantity_text

RUN_AS = 10001
DATA_MOUNT = "/data"
SCRATCH_MOUNT = "/scratch"

# Where the image's caches and temporary files go (the Dockerfile sets the same).
SCRATCH_ENV = {
    "HOME": SCRATCH_MOUNT,
    "TMPDIR": SCRATCH_MOUNT,
    "NUMBA_CACHE_DIR": f"{SCRATCH_MOUNT}/numba",
    "TORCHINDUCTOR_CACHE_DIR": f"{SCRATCH_MOUNT}/torchinductor",
    "TRITON_CACHE_DIR": f"{SCRATCH_MOUNT}/triton",
    "MPLCONFIGDIR": f"{SCRATCH_MOUNT}/matplotlib",
    "XDG_CACHE_HOME": f"{SCRATCH_MOUNT}/cache",
}

SHUFFLER_GRACE_SECONDS = 30
GATEKEEPER_GRACE_SECONDS = 30


# component -> the run plan's stage it runs
STAGES = {"selfplay": "selfplay", "shuffler": "shuffle-export-loop", "trainer": "train", "gatekeeper": "gatekeeper"}


def basedir(run: str) -> str:
    """The run's BASEDIR on the volume (several runs can share one claim)."""
    return f"{DATA_MOUNT}/{run}"


def run_cache_env(run: str) -> dict[str, str]:
    """Caches a run's pods share on its volume (outliving any one pod), over SCRATCH_ENV's."""
    return {"NUMBA_CACHE_DIR": layout.numba_cache(basedir(run))}


def stage_args(component: str, run: str, spec: RunSpec) -> list[str]:
    """The `zeroloop` arguments a component's container runs: the run plan's asynchronous stages."""
    stage = STAGES.get(component)
    if stage is None:
        raise ValueError(f"unknown component {component!r}")
    run_plan = stageconfig.describe(spec, run)
    place = stageconfig.placement(spec, basedir(run))
    return {"selfplay": lambda: plan.selfplay_args(run_plan, place),
            "shuffle-export-loop": lambda: plan.shuffle_export_loop_args(run_plan, place),
            "train": lambda: plan.train_args(run_plan, place, synchronous=False),
            "gatekeeper": lambda: plan.gatekeeper_args(run_plan, place)}[stage]()


def gpus(component: str, spec: RunSpec) -> int:
    return {"selfplay": spec.selfplay.gpus_per_pod, "trainer": spec.trainer.gpus,
            "gatekeeper": spec.gatekeeper.gpus}.get(component, 0)


def grace_seconds(component: str, spec: RunSpec) -> int:
    return {"selfplay": spec.selfplay.termination_grace_period_seconds,
            "trainer": spec.trainer.termination_grace_period_seconds,
            "shuffler": SHUFFLER_GRACE_SECONDS, "gatekeeper": GATEKEEPER_GRACE_SECONDS}[component]


def config_files(component: str) -> tuple[str, ...]:
    """The ConfigMap files a component reads."""
    return {"selfplay": (stageconfig.SELFPLAY_FILE,),
            "gatekeeper": (stageconfig.GATEKEEPER_FILE,)}.get(component, ())


def resources(component: str, pods: Pods, spec: RunSpec) -> dict[str, Any]:
    """The container's requests and limits, with its GPUs as a limit."""
    out: dict[str, Any] = {}
    for kind in ("requests", "limits"):
        entries = {k: quantity_text(v) for k, v in (pods.resources.get(kind) or {}).items()}
        if entries:
            out[kind] = entries
    n = gpus(component, spec)
    if n > 0:
        out.setdefault("limits", {})[GPU_RESOURCE] = str(n)
    return out


def _probe(port_name: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": "/metrics", "port": port_name}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def container(component: str, run: str, spec: RunSpec, pods: Pods) -> dict[str, Any]:
    mounts = [{"name": "data", "mountPath": DATA_MOUNT}, {"name": "scratch", "mountPath": SCRATCH_MOUNT}]
    if config_files(component):
        mounts.append({"name": "config", "mountPath": stageconfig.CONFIG_DIR, "readOnly": True})
    if component == "trainer":
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    # numba's cache on the run's volume: a new pod loads the compiled search rather than compiling it
    env = [{"name": k, "value": v} for k, v in {**SCRATCH_ENV, **run_cache_env(run)}.items()]
    env += [{"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    c: dict[str, Any] = {
        "name": component,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["zeroloop"],
        "args": stage_args(component, run, spec),
        "env": env,
        "resources": resources(component, pods, spec),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if spec.metrics.enabled:
        c["ports"] = [{"name": "metrics", "containerPort": spec.metrics.port, "protocol": "TCP"}]
        c["startupProbe"] = _probe("metrics", 10, 60)
        c["livenessProbe"] = _probe("metrics", 20, 3)
        c["readinessProbe"] = _probe("metrics", 10, 3)
    return c


def volumes(component: str, run: str, spec: RunSpec, claim: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "8Gi"}},
    ]
    if config_files(component):
        out.append({"name": "config", "configMap": {
            "name": naming.configmap_name(run),
            "items": [{"key": f, "path": f} for f in config_files(component)]}})
    if component == "trainer":
        out.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}})
    return out


def pod_annotations(component: str, spec: RunSpec, config_data: dict[str, str]) -> dict[str, str]:
    out = {"kubectl.kubernetes.io/default-container": component}
    if config_files(component):
        out[naming.ANNOTATION_CONFIG_CHECKSUM] = stageconfig.checksum(config_data, config_files(component))
    if spec.metrics.enabled:
        out.update({"prometheus.io/scrape": "true", "prometheus.io/port": str(spec.metrics.port),
                    "prometheus.io/path": "/metrics"})
    return out


def ownership_init_container(run: str, spec: RunSpec) -> dict[str, Any]:
    """Root init container that hands BASEDIR to the pods' user (storage.setOwnership).

    Kubernetes applies fsGroup to a ReadWriteMany volume only where its CSI
    driver asks for it; Filestore's does not, and its shares belong to root.
    This container can only create directories and change owners: every other
    capability is dropped and the root filesystem is read-only.
    """
    base = basedir(run)
    return {
        "name": "set-ownership",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["sh", "-c", f"mkdir -p {base} && chown {RUN_AS}:{RUN_AS} {base} && chmod 0775 {base}"],
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}],
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    }


def pod_template(component: str, run: str, spec: RunSpec, claim: str,
                 config_data: dict[str, str]) -> dict[str, Any]:
    """The full pod template of a component's Deployment."""
    pods: Pods = getattr(spec, component)
    pod_spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds(component, spec),
        "containers": [container(component, run, spec, pods)],
        **({"initContainers": [ownership_init_container(run, spec)]} if spec.storage.set_ownership else {}),
        "volumes": volumes(component, run, spec, claim),
    }
    if pods.node_selector:
        pod_spec["nodeSelector"] = dict(pods.node_selector)
    if pods.tolerations:
        pod_spec["tolerations"] = list(pods.tolerations)
    if pods.affinity:
        pod_spec["affinity"] = dict(pods.affinity)
    if pods.priority_class_name:
        pod_spec["priorityClassName"] = pods.priority_class_name
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {
        "metadata": {"labels": naming.component_labels(run, component),
                     "annotations": pod_annotations(component, spec, config_data)},
        "spec": pod_spec,
    }


# Pod-template keys that a spec change can remove: a merge patch must null them.
REMOVABLE_POD_SPEC_KEYS = ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets",
                           "initContainers")
REMOVABLE_POD_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path",
                             naming.ANNOTATION_CONFIG_CHECKSUM)
