"""The TrainingRun CRD: structurally valid, its examples admitted, bad runs refused with the intended message.

Admission is emulated offline as the API server does it (defaults, schema,
CEL rules incl. transition rules on update; see crd_rules). The TrainingRun
examples of the docs are checked too.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

import crd_rules
import docs
from zeroloop_operator import naming, progress, runstatus
from zeroloop_operator import spec as runspec

def run(name: str = "demo", **spec) -> dict:
    return {"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name},
            "spec": {"image": "registry.example/zeroloop:1", "storage": {"storageClassName": "standard-rwx"}, **spec}}


@pytest.mark.parametrize("version", ["1.29.0", "1.33.0"])
def test_crd_is_a_valid_custom_resource_definition(version):
    kubernetes_validate.validate(crd_rules.load_crd(), version, strict=True)


def test_every_cel_rule_compiles_and_has_a_message():
    schema = crd_rules.version_schema(crd_rules.load_crd())
    rules = crd_rules.cel_rules(schema)
    assert len(rules) >= 10
    for rule in rules:
        crd_rules._ENV.compile(rule)


def test_identity_subresources_and_printer_columns():
    crd = crd_rules.load_crd()
    assert crd["spec"]["group"] == naming.GROUP and crd["spec"]["names"]["kind"] == naming.KIND
    (version,) = crd["spec"]["versions"]
    assert version["name"] == naming.VERSION and crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"]
    scale = version["subresources"]["scale"]
    assert scale == {"specReplicasPath": ".spec.selfplay.replicas", "statusReplicasPath": ".status.selfplay.replicas",
                     "labelSelectorPath": ".status.selfplay.selector"}
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = schema
        for part in path:
            node = node["properties"][part]
        assert node["type"] == column["type"] or column["type"] in ("string", "date"), column
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names[:5] == ["Phase", "Selfplay", "Model", "Games", "Rows"] and names[-1] == "Age"


def test_the_docs_examples_are_admitted():
    runs = docs.training_runs()
    assert len(runs) >= 3  # the minimal example, GKE, EKS
    for obj in runs:
        defaulted, errors = crd_rules.admit(obj)
        assert errors == [], (obj["metadata"]["name"], errors)
        runspec.parse(defaulted["spec"], obj["metadata"]["name"])  # and the operator can run it


def test_defaults_fill_a_minimal_run():
    defaulted, errors = crd_rules.admit(run())
    assert errors == []
    spec = defaulted["spec"]
    assert spec["selfplay"]["replicas"] == 1 and spec["storage"]["accessModes"] == ["ReadWriteMany"]
    assert spec["storage"]["deletionPolicy"] == "Retain" and spec["gatekeeper"]["sprt"]["elo1"] == 35
    assert spec["metrics"] == {"enabled": True, "port": 9100}


BAD_RUNS = [
    (run(storage={"storageClassName": "s", "existingClaim": "c"}),
     "set exactly one of storage.existingClaim or storage.storageClassName"),
    (run(storage={}), "set exactly one of storage.existingClaim or storage.storageClassName"),
    (run(storage={"existingClaim": "c", "deletionPolicy": "Delete"}), "deletionPolicy must be Retain"),
    (run(selfplay={"visits": 50, "cheapVisits": 100}), "selfplay.cheapVisits must not exceed selfplay.visits"),
    (run(boardSizes=[9, 19], boardSizeWeights=[1]), "boardSizeWeights needs one weight per entry of boardSizes"),
    (run(gatekeeper={"sprt": {"elo0": 10, "elo1": 5}}), "gatekeeper.sprt.elo0 must be below gatekeeper.sprt.elo1"),
    (run(shuffler={"minRows": 1000, "maxRows": 10}), "shuffler.maxRows must be at least shuffler.minRows"),
    (run(trainer={"batchSize": 512, "samplesPerEpoch": 100}), "trainer.samplesPerEpoch must be at least"),
    (run(trainer={"lrWarmupSamples": -1}), "-1 is less than the minimum of 0"),
    (run("a-very-long-training-run-name-that-is-too-long"), "at most 44"),
    (run("7x7-run"), "start with a letter"),
    (run("go19.v2"), "no '.'"),  # a valid object name, but NAME-selfplay-metrics would not be a Service name
    (run("Go19"), "lower-case"),
    (run(boardSizes=[25]), "25 is greater than the maximum of 19"),
    (run(boardSizes=[9, 9]), "has non-unique elements"),
    (run(modelKind="resnet"), "does not match"),
    (run(selfplay={"replicas": -1}), "-1 is less than the minimum of 0"),
    (run(selfplay={"resources": {"requests": {"cpu": "two"}}}), "'two' does not match"),
    (run(storage={"storageClassName": "s", "accessModes": ["ReadWriteOncePod"]}), "is not one of"),
    (run(suspend="yes"), "'yes' is not of type 'boolean'"),
    (run(selfplay={"replica": 3}), "'replica' was unexpected"),
    ({"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "x"},
      "spec": {"storage": {"storageClassName": "s"}}}, "'image' is a required property"),
]


@pytest.mark.parametrize("obj, message", BAD_RUNS, ids=[m[:40] for _, m in BAD_RUNS])
def test_bad_runs_are_refused_with_the_intended_message(obj, message):
    _, errors = crd_rules.admit(obj)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("change, message", [
    ({"modelKind": "b10c128"}, "modelKind is immutable"),
    ({"features": "katago-v7"}, "features is immutable"),
    ({"runNamePrefix": "other"}, "runNamePrefix is immutable"),
    ({"storage": {"storageClassName": "premium-rwx"}}, "storage.storageClassName is immutable"),
    ({"storage": {"storageClassName": "standard-rwx", "size": "2Ti"}}, "storage.size is immutable"),
    ({"storage": {"existingClaim": "mine"}}, "cannot switch between an existingClaim"),
])
def test_immutable_fields_cannot_change_under_a_running_run(change, message):
    old = run(runNamePrefix="kg")
    new = copy.deepcopy(old)
    new["spec"].update(change)
    _, errors = crd_rules.admit(new, old=old)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("before, after", [({}, {"runNamePrefix": "kg"}), ({"runNamePrefix": "kg"}, {})],
                         ids=["added", "removed"])
def test_run_name_prefix_cannot_be_added_or_removed(before, after):
    """A `self == oldSelf` rule on the field alone is skipped when the field appears or disappears."""
    _, errors = crd_rules.admit(run(**after), old=run(**before))
    assert any("runNamePrefix is immutable" in e for e in errors), errors
    assert crd_rules.admit(run(**before), old=run(**before))[1] == []


def test_mutable_fields_can_change():
    old = run()
    new = copy.deepcopy(old)
    new["spec"].update({"suspend": True, "selfplay": {"replicas": 9, "visits": 800},
                        "storage": {"storageClassName": "standard-rwx", "deletionPolicy": "Delete"}})
    assert crd_rules.admit(new, old=old)[1] == []


def test_status_the_operator_computes_fits_the_schema():
    """Pure complement of the kmock test: every status shape runstatus and progress produce is declared."""
    status_schema = crd_rules.version_schema(crd_rules.load_crd())["properties"]["status"]
    s = runspec.parse(crd_rules.admit(run())[0]["spec"], "demo")
    deps = {c: {"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                           "conditions": [{"type": "ReplicaFailure", "status": "True", "message": "quota"}]}}
            for c in naming.COMPONENTS}
    st = runstatus.compute(s, runstatus.Observed(deps, {"status": {"phase": "Bound"}}, "demo-data"), 1, None,
                           "2026-01-01T00:00:00Z", "demo")
    scrape = progress.PodMetrics("p", "gatekeeper", progress.parse(
        "zeroloop_gatekeeper_models_accepted_total 1\nzeroloop_gatekeeper_candidate_win_rate 0.6\n"
        "zeroloop_selfplay_games_total 3\nzeroloop_selfplay_model_info{name=\"m-s1-d1\"} 1\n"
        "zeroloop_train_samples_total 7\nzeroloop_shuffle_data_rows 5\n"))
    st["progress"] = progress.merge(None, [scrape], {"p"}, "2026-01-01T00:00:00Z")
    assert st["progress"]["lastGating"]["result"] == "accepted"
    assert crd_rules.schema_errors(status_schema, st) == []
    invalid = runstatus.invalid(["x"], 2, st, "2026-01-01T00:00:01Z")
    assert crd_rules.schema_errors(status_schema, invalid) == []


# Typed fields the run plan writes into the stages' config files, and fields whose extreme must go with them
# (a field's extreme alone may break a CEL rule the other field keeps).
FIELDS_IN_STAGE_CONFIGS = {
    "boardSizes": (), "boardSizeWeights": (), "komi": (),
    "selfplay.visits": (), "selfplay.cheapVisits": ("selfplay.visits",), "selfplay.fullSearchProb": (),
    "selfplay.gamesInParallel": (),
    "gatekeeper.games": (), "gatekeeper.visits": (),
    "gatekeeper.sprt.elo0": (), "gatekeeper.sprt.elo1": (), "gatekeeper.sprt.alpha": (), "gatekeeper.sprt.beta": (),
}
UNBOUNDED = 1e9  # what "no minimum/maximum" lets through
CRD = crd_rules.load_crd()
SPEC_SCHEMA = crd_rules.version_schema(CRD)["properties"]["spec"]


def _field_schema(path: str) -> dict:
    schema = SPEC_SCHEMA
    for part in path.split("."):
        schema = schema["properties"][part]
    return schema


def _extremes(schema: dict) -> list[float]:
    """The smallest and largest value the schema admits (near enough, for an exclusive bound)."""
    lo, hi = schema.get("minimum", -UNBOUNDED), schema.get("maximum", UNBOUNDED)
    if schema.get("exclusiveMinimum"):
        lo += 1e-9
    if schema.get("exclusiveMaximum"):
        hi -= 1e-9
    return [lo, hi] if schema["type"] == "number" else [int(lo), int(hi)]


def _with(spec: dict, path: str, value) -> None:
    """Set path in spec to value (as the one entry of a list field)."""
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = [value] if _field_schema(path)["type"] == "array" else value


@pytest.mark.parametrize("path", sorted(FIELDS_IN_STAGE_CONFIGS))
def test_every_value_the_crd_admits_for_a_stage_config_field_the_stage_accepts(path):
    """The CRD's bounds of a typed field lie within the range of the stage setting it becomes: a run the API
    server admits never starts a self-play or gatekeeper pod that refuses its config file."""
    from zeroloop import config as cfg
    from zeroloop.gatekeeper.config import GatekeeperConfig
    from zeroloop.selfplay.config import SelfplayConfig
    from zeroloop_operator import stageconfig

    schema = _field_schema(path)
    for value in _extremes(schema.get("items", schema)):
        if path == "boardSizeWeights" and value == 0:
            continue  # weights all zero: spec.parse refuses them (test_manifests)
        spec = {"gatekeeper": {"sprt": {"enabled": True}}}
        for field in (path, *FIELDS_IN_STAGE_CONFIGS[path]):
            _with(spec, field, value)
        defaulted, errors = crd_rules.admit(run(**spec), crd=CRD)
        if errors:  # the API server refuses it (a CEL rule across fields): it never reaches a stage
            continue
        parsed = runspec.parse(defaulted["spec"], "demo")  # also checks self-play's whole file
        assert cfg.problems(GatekeeperConfig, stageconfig.gatekeeper_config(parsed), path, "") == [], value
        assert cfg.problems(SelfplayConfig, stageconfig.selfplay_config(parsed), path, "") == [], value
