"""theory.blas: BLAS thread limits, set once however deeply they nest."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, so that threadpoolctl sees both libraries)
from threadpoolctl import threadpool_info

from theory import blas


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


class _CountingController:
    """Stands in for threadpoolctl's controller: counts the limits set and restored."""

    def __init__(self):
        self.set, self.restored = [], 0

    def limit(self, limits, user_api):
        assert user_api == "blas"
        self.set.append(limits)
        outer = self

        class _Limiter:
            def restore_original_limits(self):
                outer.restored += 1

        return _Limiter()


@pytest.fixture
def counting(monkeypatch):
    ctl = _CountingController()
    monkeypatch.setattr(blas, "_controller", lambda: ctl)
    monkeypatch.setattr(blas, "_ACTIVE", [])
    return ctl


def test_nested_limit_not_stricter_is_not_set_again(counting):
    with blas.single_thread_blas():
        with blas.single_thread_blas(), blas.blas_threads(3):
            pass
        assert counting.set == [1]
    assert counting.restored == 1 and blas._ACTIVE == []


def test_stricter_nested_limit_is_set_and_restored(counting):
    with blas.blas_threads(4):
        with blas.single_thread_blas():
            assert [a.limit for a in blas._ACTIVE] == [4, 1]
        assert [a.limit for a in blas._ACTIVE] == [4]
    assert counting.set == [4, 1] and counting.restored == 2 and blas._ACTIVE == []


def test_pinned_limit_is_always_set_and_then_covers_nested_limits(counting, monkeypatch):
    monkeypatch.setattr(blas, "_PINNED", [])
    with blas.single_thread_blas():
        blas.pin_process_blas_threads(1)  # as in a forked worker: set although a limit is active
    assert counting.set == [1, 1]
    with blas.single_thread_blas():  # the pinned limit lasts: nothing to set
        pass
    assert counting.set == [1, 1]


def test_limits_really_change_blas_threads():
    before = _blas_threads()
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library")
    with blas.single_thread_blas():
        assert _blas_threads() == [1] * len(before)
        with blas.single_thread_blas():
            np.dot(np.ones((3, 3)), np.ones((3, 3)))
            assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == [1] * len(before)  # the inner block left the outer limit alone
    assert _blas_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_bad_limit(bad):
    with pytest.raises(ValueError, match="BLAS thread limit"):
        blas.blas_threads(bad)
    with pytest.raises(ValueError, match="BLAS thread limit"):
        blas.pin_process_blas_threads(bad)
