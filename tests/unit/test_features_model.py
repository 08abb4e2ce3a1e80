"""Feature building, the model pipeline, calibration and the fast scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.features import ENGINEERED, OUTPUT_NAMES, OUTPUT_SOURCES, FeatureEngineer, engineer
from creditrisk.model import (
    CalibratedClassifier,
    ModelMetadata,
    Scorer,
    input_example,
    load_model_dir,
    make_baseline,
    make_lightgbm,
    make_pipeline,
    save_model,
)

pytestmark = pytest.mark.unit


def test_engineered_values_by_hand() -> None:
    x = input_example()
    out = engineer(x)[0]
    named = dict(zip(OUTPUT_NAMES, out, strict=True))
    assert named["UTIL_1"] == pytest.approx(2682 / 120000)
    assert named["PAY_RATIO_1"] == pytest.approx(0 / 1725)
    assert named["PAY_RATIO_2"] == pytest.approx(1000 / 2682)
    assert named["DELINQUENT_MONTHS"] == 2  # PAY_2 = 2 and PAY_6 = 2
    assert named["DELAY_MONTHS_TOTAL"] == 4
    assert named["MAX_DELAY"] == 2
    assert named["PAID_DULY_MONTHS"] == 1
    assert named["BILL_TREND"] == pytest.approx((2682 - 3261) / 120000)


def test_undocumented_codes_are_folded_not_dropped() -> None:
    x = pd.concat([input_example()] * 3, ignore_index=True)
    x["EDUCATION"] = [0, 5, 6]
    x["MARRIAGE"] = [0, 1, 3]
    out = engineer(x)
    assert out.shape[0] == 3
    assert out[:, FEATURE_NAMES.index("EDUCATION")].tolist() == [4, 4, 4]
    assert out[:, FEATURE_NAMES.index("MARRIAGE")].tolist() == [3, 1, 3]
    assert x["EDUCATION"].tolist() == [0, 5, 6]  # the input is not modified


def test_zero_and_negative_bills_give_finite_ratios() -> None:
    x = input_example().copy()
    for c in ("BILL_AMT1", "BILL_AMT2", "BILL_AMT3"):
        x[c] = [-500.0] if c == "BILL_AMT2" else [0.0]
    x["PAY_AMT1"] = 1e6
    out = engineer(x)
    assert np.isfinite(out).all()
    assert out[0, OUTPUT_NAMES.index("PAY_RATIO_1")] == 10.0  # capped


def test_frame_and_matrix_give_the_same_features() -> None:
    x = input_example()
    shuffled = x[list(reversed(x.columns))]
    assert np.array_equal(engineer(x), engineer(shuffled))
    assert np.array_equal(engineer(x), engineer(x.to_numpy()))
    with pytest.raises(ValueError, match="23 columns"):
        engineer(np.zeros((1, 5)))


def test_output_sources_name_input_fields() -> None:
    assert len(OUTPUT_SOURCES) == len(OUTPUT_NAMES) == len(FEATURE_NAMES) + len(ENGINEERED)
    for srcs in OUTPUT_SOURCES:
        assert srcs and set(srcs) <= set(FEATURE_NAMES)
    assert list(FeatureEngineer().fit(input_example()).get_feature_names_out()) == list(
        OUTPUT_NAMES)


@pytest.fixture(scope="module")
def xy() -> tuple[pd.DataFrame, np.ndarray]:
    from tests.synthetic import synthetic_frame

    df = synthetic_frame(1500, seed=3)
    return df.loc[:, list(FEATURE_NAMES)], df[TARGET].to_numpy()


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_pipeline_saves_loads_and_scores_identically(tmp_path, xy, method) -> None:
    X, y = xy
    lgbm = make_lightgbm({"n_estimators": 30}, seed=0, n_jobs=1)
    model = make_pipeline(CalibratedClassifier(lgbm, method)).fit(X, y)
    meta = ModelMetadata(threshold=0.3, risk_bands=[{"name": "all", "upper": 1.0}],
                         model_name="credit-default", calibration=method)
    save_model(model, tmp_path / "m", meta)
    assert (tmp_path / "m" / "model.skops").exists()
    loaded = load_model_dir(tmp_path / "m")
    assert loaded.scorer.fast
    expected = model.predict_proba(X)[:, 1]
    assert np.abs(loaded.predict_proba(X) - expected).max() < 1e-12
    assert np.abs(loaded.predict_proba(X.to_numpy()[:1]) - expected[:1]).max() < 1e-12
    assert loaded.metadata.threshold == 0.3 and loaded.metadata.calibration == method
    assert expected.min() >= 0 and expected.max() <= 1


def test_baseline_goes_through_the_pipeline(tmp_path, xy) -> None:
    X, y = xy
    model = make_baseline(C=1.0, max_iter=500, seed=0).fit(X, y)
    scorer = Scorer(model)
    assert not scorer.fast
    assert np.allclose(scorer.predict_proba(X.to_numpy()), model.predict_proba(X)[:, 1])
    with pytest.raises(TypeError):
        scorer.contributions(X)


def test_contributions_sum_to_the_raw_score(xy) -> None:
    X, y = xy
    model = make_pipeline(make_lightgbm({"n_estimators": 30}, seed=0, n_jobs=1)).fit(X, y)
    contrib, bias = Scorer(model).contributions(X.to_numpy()[:10])
    raw = model[-1].booster_.predict(engineer(X.to_numpy()[:10]), raw_score=True)
    assert contrib.shape == (10, len(OUTPUT_NAMES))
    assert np.allclose(contrib.sum(axis=1) + bias, raw)


def test_load_rejects_untrusted_types(tmp_path, xy) -> None:
    from sklearn.preprocessing import FunctionTransformer

    from creditrisk.errors import RegistryError

    X, y = xy
    model = make_pipeline(make_lightgbm({"n_estimators": 5}, seed=0, n_jobs=1)).fit(X, y)
    model.steps.insert(0, ("evil", FunctionTransformer(print)))
    meta = ModelMetadata(threshold=0.3, risk_bands=[], model_name="m")
    import mlflow.sklearn

    mlflow.sklearn.save_model(model, str(tmp_path / "m"), serialization_format="skops",
                              skops_trusted_types=["builtins.print", "collections.OrderedDict",
                                                   "creditrisk.features.FeatureEngineer",
                                                   "lightgbm.basic.Booster",
                                                   "lightgbm.sklearn.LGBMClassifier"],
                              metadata={"creditrisk": meta.as_dict()}, pip_requirements=[])
    with pytest.raises(RegistryError, match="untrusted types"):
        load_model_dir(tmp_path / "m")
