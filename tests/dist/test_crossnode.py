"""The hierarchical (cross-node) CPU collectives, on two simulated nodes in a subprocess.

The subprocess (tests/dist/crossnode_job.py) starts its own ray.cluster_utils.Cluster, so it never
touches the suite's session cluster; it prints one JSON line that we check here.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_hierarchical_collectives_match_numpy_across_two_nodes():
    script = os.path.join(os.path.dirname(__file__), "crossnode_job.py")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=840, env=environ)
    assert done.returncode == 0, done.stderr[-5000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    by_node = {}
    for r in results:
        by_node.setdefault(r["node"], []).append((r["rank"], r["node_rank"], r["local_rank"], r["local_world_size"]))
    assert sorted(by_node) == ["node_a", "node_b"]  # node A has 2 CPUs, B has 1: ranks split 2 + 1
    assert [local for _, _, local, _ in by_node["node_a"]] == [0, 1] and len(by_node["node_b"]) == 1
    for node, ranks in by_node.items():
        assert len({node_rank for _, node_rank, _, _ in ranks}) == 1 and all(size == len(ranks) for *_, size in ranks)
    first = by_node[results[0]["node"]]
    assert first[0][:2] == (0, 0)  # rank 0's node is node 0; the other node's ranks come after it
    assert sorted(rank for ranks in by_node.values() for rank, *_ in ranks) == [0, 1, 2]
    assert all(rank == ranks[0][0] + i for ranks in by_node.values() for i, (rank, *_) in enumerate(ranks))
    assert all(r["num_nodes"] == 2 for r in results)  # the communicator saw two nodes: hierarchical path
    assert [r["exchanges_between_nodes"] for r in results] == [r["local_rank"] == 0 for r in results]
    assert [r["failures"] for r in results] == [[], [], []]
