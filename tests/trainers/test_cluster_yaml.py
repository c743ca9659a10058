"""cluster.yaml is a valid Ray cluster launcher config, by Ray's own validator."""
from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def test_cluster_yaml_passes_rays_validator():
    util = pytest.importorskip("ray.autoscaler._private.util")
    pytest.importorskip("jsonschema")
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    util.validate_config(util.prepare_config(config))


def test_cluster_yaml_has_gpu_workers_and_installs_the_cuda_extra():
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    workers = [t for t in config["available_node_types"].values() if t["resources"].get("GPU", 0) > 0]
    assert workers and all(t["max_workers"] >= 1 for t in workers)
    assert any("[cuda12]" in command for command in config["setup_commands"])
    assert "." in config["file_mounts"].values()
