"""The `raygrad` command line (click)."""
from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raygrad")
def main():
    """raygrad: train tensor-engine models in one process, on local Ray workers, or on a Ray cluster."""


@main.command()
def info():
    """Show devices, CuPy/NCCL availability and, if one is running, the Ray cluster's resources.

    \b
    Example:
      raygrad info
    """
    import numpy as np

    import tensor

    click.echo(f"raygrad {tensor.__version__}, numpy {np.__version__}")
    click.echo(f"CUDA devices: {tensor.cuda.device_count()}")
    try:
        import cupy

        nccl = _nccl_version(cupy)
        click.echo(f"CuPy {cupy.__version__}, NCCL {nccl}")
    except Exception as exc:  # CuPy missing or broken: say so, never fail
        click.echo(f"CuPy: not available ({type(exc).__name__}: {exc})")
    _echo_ray_resources()


def _nccl_version(cupy):
    try:
        from cupy.cuda import nccl

        return nccl.get_version()
    except Exception:
        return "not available"


def _echo_ray_resources():
    try:
        import ray
    except ImportError:
        click.echo("Ray: not installed")
        return
    if not ray.is_initialized():
        try:
            ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
        except Exception:
            click.echo(f"Ray {ray.__version__}: no running cluster found (start one with `ray start --head`)")
            return
    click.echo(f"Ray {ray.__version__} cluster resources: {ray.cluster_resources()}")
