"""tensor.host_memory: the allocator policy for training processes, applied in a fresh interpreter."""
import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys
from tensor import host_memory
applied = host_memory.keep_freed_memory()
print(json.dumps({"applied": applied, "again": host_memory.keep_freed_memory()}))
"""


def _probe(env_extra):
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "RAYGRAD_KEEP_FREED_MEMORY"}
    env.update(env_extra)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applies_once_on_glibc():
    assert _probe({}) == {"applied": True, "again": True}


@pytest.mark.parametrize("env", [{"RAYGRAD_KEEP_FREED_MEMORY": "0"}, {"MALLOC_TRIM_THRESHOLD_": "1000000"},
                                 {"MALLOC_MMAP_THRESHOLD_": "65536"}], ids=["opt-out", "user-trim", "user-mmap"])
def test_the_users_choice_wins(env):
    assert _probe(env) == {"applied": False, "again": False}


FAULTS = """
import resource
import numpy as np
from tensor import host_memory
host_memory.keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # what a step does to the heap: large temporaries, freed at its end
    a, b, c = np.ones(2_000_000), np.ones(1_000_000), np.ones(3_000_000)
    del a, b, c
for _ in range(3):
    step()
before = faults()
for _ in range(10):
    step()
print(faults() - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_steps_stop_faulting_pages_back_in():
    """The effect itself: repeated steps reuse the freed memory instead of faulting fresh pages."""
    import os

    def run(extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update(extra)
        done = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, env=env, check=True)
        return int(done.stdout.strip())

    kept, default = run({"RAYGRAD_KEEP_FREED_MEMORY": "1"}), run({"RAYGRAD_KEEP_FREED_MEMORY": "0"})
    assert kept < 500 < default, (kept, default)
