"""The CPU communicator's cross-node path on a simulated two-node Ray cluster (ray.cluster_utils.Cluster).

Run as a script by tests/dist/test_crossnode.py, in its own process so that its cluster never meets the
suite's session cluster. Node A has 2 CPUs and the custom resource "node_a", node B 1 CPU and "node_b";
3 one-CPU ranks therefore land 2 on A and 1 on B. Prints one JSON line: each rank's placement and the
list of collectives whose result differed from NumPy (empty when all is well).
"""

import json
import sys

import numpy as np
import ray
from ray.cluster_utils import Cluster

from dist import WorkerGroup
from dist.comm import init_communicator
from dist.env import get_context


def rank_input(rank, length, dtype):
    rng = np.random.default_rng([rank, length])
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(length).astype(dtype)
    return rng.integers(-1000, 1000, length).astype(dtype)


def check_collectives():
    ctx = get_context()
    comm = init_communicator("cpu", timeout_s=120, max_buffer_bytes=64 * 1024)
    n, failures = ctx.world_size, []

    def expect(label, actual, expected, tol=0.0):
        if actual.shape != expected.shape or not np.allclose(actual, expected, rtol=tol, atol=tol):
            failures.append(label)

    for length in (0, 1, 7, 100_003):
        for dtype in ("float32", "float64", "int64"):
            xs = [rank_input(r, length, dtype) for r in range(n)]
            tol = 1e-5 if dtype == "float32" else 1e-12
            for op, reference in (("sum", np.sum), ("max", np.max), ("min", np.min)):
                x = xs[ctx.rank].copy()
                comm.allreduce(x, op=op)
                expect(f"allreduce {op} {length} {dtype}", x, reference(np.stack(xs), axis=0), tol)
            if dtype != "int64":
                x = xs[ctx.rank].copy()
                comm.allreduce(x, op="mean")
                expect(f"allreduce mean {length} {dtype}", x, np.mean(np.stack(xs), axis=0), tol)
            for src in (0, n - 1):
                x = xs[ctx.rank].copy()
                comm.broadcast(x, src=src)
                expect(f"broadcast src={src} {length} {dtype}", x, xs[src])
            expect(f"allgather {length} {dtype}", comm.allgather(xs[ctx.rank]), np.stack(xs))
            big = [np.concatenate([rank_input(r, length, dtype)] * n) for r in range(n)]
            total = np.sum(np.stack(big), axis=0).reshape(n, length)
            expect(f"reduce_scatter {length} {dtype}", comm.reduce_scatter(big[ctx.rank]), total[ctx.rank], tol)
    works = [comm.allreduce_async(np.full(1000, float(ctx.rank + i))) for i in range(3)]
    for i, work in enumerate(works):
        expect(f"allreduce_async {i}", work.wait(), np.full(1000, float(sum(range(n)) + n * i)))
    comm.barrier()
    return {"rank": ctx.rank, "node_rank": ctx.node_rank, "local_rank": ctx.local_rank,
            "local_world_size": ctx.local_world_size, "node_id": ctx.node_id, "failures": failures,
            "num_nodes": comm.topology.num_nodes, "exchanges_between_nodes": comm._cross is not None}


def main() -> int:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=2, resources={"node_a": 2})
        cluster.add_node(num_cpus=1, resources={"node_b": 1})
        ray.init(address=cluster.address)
        node_names = {node["NodeID"]: next((r for r in node["Resources"] if r.startswith("node_")), "head")
                      for node in ray.nodes()}
        with WorkerGroup(3, placement_timeout_s=180, name="crossnode") as group:
            results = group.execute(check_collectives)
        for result in results:
            result["node"] = node_names[result.pop("node_id")]
        print(json.dumps(results))
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
