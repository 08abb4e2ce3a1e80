"""The one fence around LightGBM's private parts: the single-row C API call
(``LGBM_BoosterPredictForMatSingleRowFast`` through ``lightgbm.basic._LIB`` and the
booster's ``_handle``) that scores one record without ``Booster.predict``'s per-call set-up.

:func:`single_row_supported` checks the installed version when a model loads; on a
version this was not written for the scorer calls ``Booster.predict`` (the stock path)
and one warning line says so.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np

from creditrisk import _compat

log = logging.getLogger(__name__)

#: The LightGBM release line the private touches were written and tested against.
WRITTEN_FOR = "4.7."


def installed_version() -> str:
    return _compat.installed_version("lightgbm")


def single_row_supported(found: str | None = None) -> bool:
    """True on the LightGBM version the C API call was written for; otherwise False and,
    once per process, one warning line saying ``Booster.predict`` is used instead."""
    return _compat.supported(
        "lightgbm", WRITTEN_FOR, installed_version() if found is None else found,
        what="the single-row scorer", fallback="scoring single records with Booster.predict",
        log=log)


class SingleRowPredictor:
    """``LGBM_BoosterPredictForMatSingleRowFast``: one record without the per-call set-up
    of ``Booster.predict`` (parameter parsing, predictor creation, array checks)."""

    def __init__(self, booster: Any, n_features: int) -> None:
        import ctypes
        import threading

        from lightgbm.basic import _C_API_DTYPE_FLOAT64, _C_API_PREDICT_NORMAL, _LIB, _safe_call

        self._lib = _LIB
        self._safe_call = _safe_call
        self._booster = booster  # keeps the handle alive
        self._lock = threading.Lock()
        self._config = ctypes.c_void_p()
        num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(_C_API_PREDICT_NORMAL), ctypes.c_int(0),
            ctypes.c_int(num_iteration), ctypes.c_int(_C_API_DTYPE_FLOAT64),
            ctypes.c_int32(n_features), ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(self._config)))
        self._out_len = ctypes.c_int64()
        # One input row and one output buffer, reused under the lock: their ctypes
        # pointers are made once (``ndarray.ctypes.data_as`` costs microseconds a call).
        self._row = np.empty(n_features, dtype=np.float64)
        self._out = np.empty(1, dtype=np.float64)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len_ref = ctypes.byref(self._out_len)

    def predict(self, F: np.ndarray) -> np.ndarray:
        with self._lock:
            self._row[:] = F[0]
            self._safe_call(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._config, self._row_ptr, self._out_len_ref, self._out_ptr))
            return self._out.copy()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._lib.LGBM_FastConfigFree(self._config)
