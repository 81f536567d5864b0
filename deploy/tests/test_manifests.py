"""The deployment: the rendered manifests match the chart, every built-in
object is valid against the Kubernetes schemas (warnings count as
failures), and the objects of CRD kinds are checked field by field."""

import sys
import warnings
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
import render  # noqa: E402

KUBERNETES = "1.31.0"


def objects():
    return [d for d in yaml.safe_load_all(render.OUT.read_text()) if d]


def test_the_rendered_manifests_match_the_chart():
    assert render.OUT.read_text() == render.render(), "run python3 deploy/render.py"


def test_other_template_actions_are_refused(tmp_path):
    with pytest.raises(KeyError):
        render.value({"a": {}}, "a.b")


@pytest.mark.parametrize("obj", objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_built_in_objects_are_valid(obj):
    if obj["apiVersion"].startswith("snapshot.storage.k8s.io"):
        pytest.skip("a CRD kind: checked in test_volume_snapshot_class")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning is a failure
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_validator_finds_mistakes():
    [ds] = [o for o in objects() if o["kind"] == "DaemonSet"]
    ds["spec"]["template"]["spec"]["volumez"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, KUBERNETES, strict=True)


def test_volume_snapshot_class():
    [vsc] = [o for o in objects() if o["kind"] == "VolumeSnapshotClass"]
    assert vsc["apiVersion"] == "snapshot.storage.k8s.io/v1"
    assert set(vsc) == {"apiVersion", "kind", "metadata", "driver", "deletionPolicy"}
    assert vsc["driver"] == "csi.shale.dev"
    assert vsc["deletionPolicy"] in ("Delete", "Retain")
    assert set(vsc["metadata"]) == {"name"}


def test_the_pieces_fit():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in objects()}
    driver = objs[("CSIDriver", "csi.shale.dev")]["spec"]
    assert driver["podInfoOnMount"] is True and driver["attachRequired"] is False
    assert objs[("StorageClass", "shale")]["provisioner"] == "csi.shale.dev"
    node = objs[("DaemonSet", "shale-csi-node")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in node["volumes"]}
    assert volumes["dev-fuse"]["hostPath"]["path"] == "/dev/fuse"
    images = [c["image"] for c in objs[("Deployment", "shale-csi-controller")]["spec"]["template"]["spec"]["containers"]]
    for sidecar in ("csi-provisioner", "csi-snapshotter", "csi-resizer"):
        assert any(sidecar in i for i in images), images
