"""Anomaly detection (tensor.autograd.detect_anomaly / set_detect_anomaly) and tensor.set_printoptions."""
import inspect

import numpy as np
import pytest

import tensor
from tensor import engine
from tensor.autograd import Function, detect_anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled, set_detect_anomaly
from tensor.errors import AutogradError

# detect_anomaly warns that it is slow, as PyTorch does; 0/0 in NumPy warns too.
pytestmark = pytest.mark.filterwarnings("ignore:Anomaly Detection:UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(autouse=True)
def restore_modes():
    yield
    set_detect_anomaly(False)
    tensor.set_printoptions(profile="default")


def _line():
    """The line number of the caller's previous line (the op under test)."""
    return inspect.currentframe().f_back.f_lineno - 1


class NanBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.xp.nan


class FailingBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x + 1

    @staticmethod
    def backward(ctx, grad):
        raise ValueError("broken backward")


def test_nan_from_sqrt_at_zero_names_the_node_and_the_forward_line(device):
    x = tensor.zeros(3, requires_grad=True, device=device)
    with detect_anomaly():
        y = x.sqrt()
        line = _line()
        loss = (y * 0).sum()  # d/dy = 0, then sqrt's backward computes 0 / (2 * 0)
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    message = str(info.value)
    assert isinstance(info.value, AutogradError)
    assert "Function 'Sqrt' returned nan values in its 0th output" in message
    assert "Traceback of forward call that caused the error" in message
    assert f'test_anomaly.py", line {line}, in test_nan_from_sqrt' in message
    assert "tensor/ops" not in message  # trimmed to the user's frames


def test_nan_from_custom_function_is_reported(device):
    x = tensor.ones(2, requires_grad=True, device=device)
    with detect_anomaly():
        y = NanBackward.apply(x)
        line = _line()
        with pytest.raises(AutogradError, match="Function 'NanBackward' returned nan values") as info:
            y.sum().backward()
    assert f"line {line}" in str(info.value)


def test_off_mode_checks_nothing(device):
    x = tensor.zeros(3, requires_grad=True, device=device)
    (x.sqrt() * 0).sum().backward()
    assert np.isnan(x.grad.cpu().numpy()).all()
    assert not is_anomaly_enabled()


def test_check_nan_false_records_traces_but_lets_nan_through(device):
    x = tensor.ones(2, requires_grad=True, device=device)
    with detect_anomaly(check_nan=False):
        assert is_anomaly_enabled() and not is_anomaly_check_nan_enabled()
        y = NanBackward.apply(x)
        y.sum().backward()
    assert y.grad_fn._anomaly_trace is not None
    assert np.isnan(x.grad.cpu().numpy()).all()


def test_node_made_before_anomaly_mode_says_it_has_no_trace(device):
    x = tensor.ones(2, requires_grad=True, device=device)
    y = NanBackward.apply(x)
    with detect_anomaly(), pytest.raises(AutogradError, match="no forward traceback"):
        y.sum().backward()


def test_nan_check_runs_with_create_graph(device):
    x = tensor.zeros(3, requires_grad=True, device=device)
    with detect_anomaly():
        y = x.sqrt()
        with pytest.raises(AutogradError, match="'Sqrt' returned nan"):
            tensor.autograd.grad((y * 0).sum(), x, create_graph=True)


def test_error_in_custom_backward_carries_the_forward_trace(device):
    x = tensor.ones(2, requires_grad=True, device=device)
    with detect_anomaly():
        y = FailingBackward.apply(x)
        line = _line()
        with pytest.raises(ValueError, match="broken backward") as info:
            y.sum().backward()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Error detected in FailingBackward" in notes and f"line {line}" in notes


def test_off_mode_restores_the_original_apply_and_engine_functions():
    apply, call_backward = Function.__dict__["apply"], engine._call_backward
    with detect_anomaly():
        assert Function.__dict__["apply"] is not apply and engine._call_backward is not call_backward
    assert Function.__dict__["apply"] is apply and engine._call_backward is call_backward
    assert Function.apply.__func__ is apply.__func__


def test_modes_nest_and_restore_through_exceptions():
    apply = Function.__dict__["apply"]
    with detect_anomaly():
        with set_detect_anomaly(False):
            assert not is_anomaly_enabled() and Function.__dict__["apply"] is apply
        assert is_anomaly_enabled()
        with pytest.raises(KeyError):
            with detect_anomaly(check_nan=False):
                assert not is_anomaly_check_nan_enabled()
                raise KeyError("inside")
        assert is_anomaly_enabled() and is_anomaly_check_nan_enabled()
    assert not is_anomaly_enabled() and Function.__dict__["apply"] is apply


def test_set_detect_anomaly_as_a_function():
    set_detect_anomaly(True, check_nan=False)
    assert is_anomaly_enabled() and not is_anomaly_check_nan_enabled()
    assert tensor.is_anomaly_enabled() and not tensor.is_anomaly_check_nan_enabled()
    set_detect_anomaly(False)
    assert not is_anomaly_enabled() and is_anomaly_check_nan_enabled()


def test_decorator_form(device):
    @detect_anomaly()
    def step(x):
        assert is_anomaly_enabled()
        (x.sqrt() * 0).sum().backward()

    assert not is_anomaly_enabled()  # decorating alone turns nothing on
    with pytest.raises(AutogradError, match="'Sqrt' returned nan"):
        step(tensor.zeros(2, requires_grad=True, device=device))
    assert not is_anomaly_enabled()


def test_set_printoptions_changes_repr_and_profile_default_resets(device):
    t = tensor.arange(10, dtype=tensor.float32, device=device) + 0.123456
    default = repr(t)
    assert "0.1235" in default and "..." not in default
    tensor.set_printoptions(precision=2, threshold=5, edgeitems=2)
    assert repr(t).startswith("tensor([0.12, 1.12, ..., 8.12, 9.12]")
    tensor.set_printoptions(sci_mode=True)  # the others stay; only sci_mode resets on every call
    assert "e+00" in repr(t) and "..." in repr(t)
    tensor.set_printoptions(profile="default")
    assert repr(t) == default
    assert tensor.printing.get_printoptions() == {
        "precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}


def test_set_printoptions_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown profile 'long'"):
        tensor.set_printoptions(profile="long")
    with pytest.raises(ValueError, match="precision must be a non-negative number"):
        tensor.set_printoptions(precision=-1)
