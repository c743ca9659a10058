"""A sweep's search space, scheduler and search algorithm: from plain YAML values to Ray Tune objects.

    space:                                   # keys address the job YAML, nested with dots
      optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
      model.kwargs.channels: {grid: [16, 32]}
      model.kwargs.dropout: {uniform: [0.0, 0.3]}
      data.batch_size: {choice: [32, 64]}
      epochs: 6                              # a plain value: fixed for every trial

grid tries every value (each combination of the grid keys, num_samples times); choice, uniform,
loguniform and randint ([low, high), as Ray Tune) are sampled. Everything is checked here, before
a trial starts: the distribution's name, its bounds, that each key exists in the job (or is an
argument of the model, optimizer or LR scheduler class it lands on), and that the values have the
types the job schema wants.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import numbers

from .errors import ConfigError
from .job import parse_job, set_path

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
SEARCHES = ("random", "grid", "optuna")
SCHEDULERS = ("fifo", "asha", "median", "pbt")


# ------------------------------------------------------------------------------------------ space
def parse_space(space: dict, job: dict, search: str = "random") -> dict:
    """The Tune param_space for `space` (a flat dict: dotted job key -> Tune domain or fixed value)."""
    from ray.tune.search.sample import Domain

    if search not in SEARCHES:
        raise ConfigError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if not isinstance(space, dict) or not space:
        raise ConfigError("space must be a non-empty mapping of job keys to distributions, e.g. "
                          f"{{'optimizer.lr': {{'loguniform': [1e-4, 1e-2]}}}}; got {space!r}")
    param_space = {}
    for key, spec in space.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"space keys are dotted job keys such as 'optimizer.lr', got {key!r}")
        check_job_key(job, key)
        if isinstance(spec, Domain) or _is_tune_grid(spec):
            value = spec  # a ready Tune object from the Python API: Tune checks its own bounds
        else:
            value = _domain(key, spec)
            _check_values(job, key, spec)
        param_space[key] = _for_search(key, value, search)
    return param_space


def mutations(spec: dict | None, job: dict, param_space: dict) -> dict:
    """PBT's hyperparam_mutations: from their own spec (like a space; a grid becomes the list PBT picks
    from), or else the space's sampled keys. Not its grids by default: a grid usually compares
    architectures (widths), whose weights another trial's checkpoint could not load."""
    from ray.tune.search.sample import Domain

    if spec is None:
        found = {key: value for key, value in param_space.items() if isinstance(value, Domain)}
    else:
        found = {key: value["grid_search"] if _is_tune_grid(value) else value
                 for key, value in parse_space(spec, job).items() if isinstance(value, Domain) or _is_tune_grid(value)}
    if not found:
        raise ConfigError("scheduler pbt: nothing to mutate; give hyperparam_mutations or a space with sampled "
                          "keys (choice, uniform, loguniform, randint)")
    return found


def _domain(key: str, spec):
    """A Tune domain (or grid) for one YAML spec; a scalar stays a fixed value."""
    from ray import tune

    if isinstance(spec, list):
        raise ConfigError(f"space key '{key}': a bare list {spec!r} is ambiguous; write {{grid: {spec!r}}} to try "
                          f"every value or {{choice: {spec!r}}} to sample one (a fixed list belongs in the job)")
    if not isinstance(spec, dict):
        return spec  # a fixed value
    if len(spec) != 1:
        raise ConfigError(f"space key '{key}' must name one distribution ({', '.join(DISTRIBUTIONS)}), "
                          f"got {sorted(spec)}")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        hint = _did_you_mean(kind, DISTRIBUTIONS)
        raise ConfigError(f"space key '{key}': unknown distribution '{kind}'; {hint}known: {', '.join(DISTRIBUTIONS)}")
    if kind in ("grid", "choice"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"space key '{key}': {kind} needs a non-empty list of values, got {args!r}")
        return tune.grid_search(list(args)) if kind == "grid" else tune.choice(list(args))
    low, high = _bounds(key, kind, args)
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](low, high)


def _bounds(key: str, kind: str, args) -> tuple:
    if not isinstance(args, list) or len(args) != 2 or not all(_is_number(a) for a in args):
        raise ConfigError(f"space key '{key}': {kind} takes [low, high] (two numbers), got {args!r}")
    low, high = args
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"space key '{key}': randint takes two integers [low, high), got {args!r}")
    if low > high:
        raise ConfigError(f"space key '{key}': {kind} low={low} is greater than high={high}; write [{high}, {low}]")
    if low == high:
        raise ConfigError(f"space key '{key}': {kind} low and high are both {low}; give a fixed value instead")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"space key '{key}': loguniform needs low > 0 (it samples the logarithm), got low={low}")
    return low, high


def _check_values(job: dict, key: str, spec) -> None:
    """Every value a trial may get must pass the job schema's type check for `key`."""
    if isinstance(spec, dict):
        (kind, args), = spec.items()
        samples = list(args) if kind in ("grid", "choice") else [args[0] if kind == "randint" else float(args[0])]
    else:
        samples = [spec]
    for value in samples:
        trial_job = copy.deepcopy(job)
        set_path(trial_job, key, value)
        try:
            parse_job(trial_job)
        except ConfigError as exc:
            raise ConfigError(f"space key '{key}' = {value!r}: {exc}") from None


def _for_search(key: str, value, search: str):
    """Grid search tries every value of grid and choice keys; Optuna samples, so it takes no grid."""
    from ray import tune
    from ray.tune.search.sample import Categorical, Domain

    if search == "grid":
        if isinstance(value, Categorical):
            return tune.grid_search(list(value.categories))
        if isinstance(value, Domain):
            raise ConfigError(f"search='grid' tries every value, but space key '{key}' is a continuous range; give "
                              "it {grid: [...]} (a list of values) or use search='random'")
    if search == "optuna" and _is_tune_grid(value):
        raise ConfigError(f"search='optuna' samples its own values, but space key '{key}' is a grid; write "
                          f"{{choice: {value['grid_search']!r}}} instead")
    return value


def _is_tune_grid(value) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def _did_you_mean(name, options) -> str:
    """ "did you mean 'x'? " for the option that `name` starts (or that looks most like it), else ""."""
    name = str(name)
    close = [o for o in options if o.startswith(name) or name.startswith(o)]
    close = close or difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'? " if close else ""


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------- keys
def check_job_key(job: dict, key: str) -> None:
    """`key` must be a job schema key, or an argument of what a free-form section (kwargs) is passed to."""
    parts = key.split(".")
    if parts[0] == "scheduler" and len(parts) > 1 and job["scheduler"] is None:
        raise ConfigError(f"space key '{key}': the job has no LR scheduler; add one to the job (scheduler: "
                          "{name: ..., ...}) before sweeping its options")
    try:
        set_path(copy.deepcopy(job), key, None)  # the schema check: unknown keys suggest the nearest
    except ConfigError as exc:
        raise ConfigError(f"space key '{key}': {exc}") from None
    except TypeError:  # a step of the path holds a value, not a mapping
        raise ConfigError(f"space key '{key}': the job's value on the way is not a mapping") from None
    if parts[:2] == ["model", "kwargs"] and len(parts) == 3:
        _check_argument(key, _model_class(job), parts[2], job["model"]["kwargs"])
    elif parts[:2] == ["optimizer", "kwargs"] and len(parts) == 3:
        import tensor.optim

        _check_argument(key, getattr(tensor.optim, job["optimizer"]["name"], None), parts[2], {})
    elif parts[0] == "scheduler" and len(parts) == 2:
        _check_scheduler_key(job, key, parts[1])


def _model_class(job: dict):
    from .build import Ref

    return Ref(job["model"]["class"], job["base_dir"] or ".").resolve()


def _check_scheduler_key(job: dict, key: str, name: str) -> None:
    from tensor.optim import lr_scheduler

    if name not in ("name", "interval"):
        _check_argument(key, getattr(lr_scheduler, job["scheduler"].get("name", ""), None), name, job["scheduler"])


def _check_argument(key: str, target, name: str, given: dict) -> None:
    """`name` must be a parameter of `target` (a class or function), unless the job already passes it."""
    if target is None or name in given:
        return
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to check against
        return
    if name in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [p for p in params if p != "self"]
    hint = _did_you_mean(name, names)
    raise ConfigError(f"space key '{key}': {getattr(target, '__name__', target)} has no argument '{name}'; {hint}"
                      f"its arguments: {', '.join(names)}")


# ------------------------------------------------------------------------------------- schedulers
def make_scheduler(spec, job: dict, param_space: dict):
    """A Tune TrialScheduler (None: first in, first out) from a name, {type: name, option: ...}, or an instance.

    Times count reports (training_iteration: one per epoch for the standard loop), so grace_period,
    max_t and perturbation_interval are in epochs. asha's max_t defaults to the job's epochs.
    """
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, PopulationBasedTraining, TrialScheduler

    if spec is None or isinstance(spec, TrialScheduler):
        return spec
    options = {"type": spec} if isinstance(spec, str) else dict(spec) if isinstance(spec, dict) else None
    if options is None or "type" not in options:
        raise ConfigError(f"scheduler must be a name ({', '.join(SCHEDULERS)}) or a mapping with 'type', got {spec!r}")
    kind = options.pop("type")
    if kind not in SCHEDULERS:
        hint = _did_you_mean(kind, SCHEDULERS)
        raise ConfigError(f"scheduler type '{kind}' is unknown; {hint}known: {', '.join(SCHEDULERS)}")
    for reserved in ("metric", "mode"):
        if reserved in options:
            raise ConfigError(f"scheduler {kind}: set '{reserved}' on the sweep, not on its scheduler")
    if kind == "fifo":
        _check_options(kind, options, lambda: None)
        return None
    options.setdefault("time_attr", "training_iteration")
    if kind == "asha":
        options.setdefault("max_t", job["epochs"] or 100)
        return _build(kind, ASHAScheduler, options)
    if kind == "median":
        options.setdefault("grace_period", 1)
        return _build(kind, MedianStoppingRule, options)
    options.setdefault("perturbation_interval", 1)
    options["hyperparam_mutations"] = mutations(options.get("hyperparam_mutations"), job, param_space)
    _check_pbt_checkpoints(job, options["perturbation_interval"])
    return _build(kind, PopulationBasedTraining, options)


def _build(kind: str, cls, options: dict):
    _check_options(kind, options, cls)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scheduler {kind}: {exc}") from None


def _check_options(kind: str, options: dict, cls) -> None:
    known = [p for p in inspect.signature(cls).parameters if p not in ("self", "metric", "mode")]
    for name in options:
        if name not in known:
            hint = _did_you_mean(name, known)
            raise ConfigError(f"scheduler {kind} has no option '{name}'; {hint}options: {', '.join(known) or 'none'}")


def _check_pbt_checkpoints(job: dict, interval) -> None:
    """PBT clones a trial's latest checkpoint at each perturbation: there must be a fresh one by then."""
    every = job["checkpoint"]["every_n_epochs"]
    if every is not None and every > 1 and (not isinstance(interval, int) or interval % every):
        raise ConfigError(f"scheduler pbt perturbs every {interval} report(s), but the job checkpoints every {every} "
                          f"epochs; set checkpoint.every_n_epochs to 1 (or a divisor of perturbation_interval)")


# -------------------------------------------------------------------------------------- searchers
def make_searcher(search: str, metric: str, mode: str, seed: int, max_concurrent: int | None):
    """Tune's search algorithm for `search`: random/grid sampling (seeded), or Optuna's TPE sampler.

    Random and grid sampling make a trial only when one of max_concurrent may start (Tune ignores
    TuneConfig.max_concurrent_trials for them), so trials start in the order of the space: the
    first values of a grid run first. Optuna is limited by Tune's max_concurrent_trials instead.
    """
    if search in ("random", "grid"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent or 0)
    try:
        import optuna  # noqa: F401 - only to say clearly that it is missing
    except ImportError:
        raise ConfigError("search='optuna' needs the optuna package: pip install optuna "
                          "(or pip install 'raygrad[optuna]')") from None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(metric=metric, mode=mode, seed=seed)
