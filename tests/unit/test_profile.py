"""The data profile: an HTML report with the contract's sections, plots and quirk counts."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import AGE_BANDS, FEATURE_NAMES, FEATURES, ID_COLUMN, TARGET
from creditrisk.errors import DataError
from creditrisk.profile import write_profile
from creditrisk.validation import validate_frame
from synthetic import synthetic_frame

SECTIONS = ("overview", "balance", "distributions", "correlation", "quirks", "slices", "notes")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _summary(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="profile-summary">(.*?)</script>',
                  page, re.S)
    assert m, "the page embeds its numbers as JSON"
    return json.loads(m.group(1))


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"',
                                                    page)]


def _plant_quirks(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[str, int], list[int]]]:
    """Only documented codes, then known undocumented codes at known rows."""
    df = df.copy()
    planted: dict[tuple[str, int], list[int]] = {}
    rng = np.random.default_rng(7)
    free = list(rng.permutation(len(df)))
    for f in FEATURES:
        if f.codes is None or f.documented_codes is None:
            continue
        undocumented = [c for c in f.codes if c not in f.documented_codes]
        for k, code in enumerate(undocumented):
            count = 3 + 2 * k + len(planted)
            rows = [int(free.pop()) for _ in range(count)]
            df.loc[rows, f.name] = code
            planted[(f.name, code)] = rows
    return df, planted


# --------------------------------------------------------------------------------------
# The synthetic helper itself
# --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_synthetic_frame_is_valid_deterministic_and_canonical() -> None:
    a = synthetic_frame(500, seed=3)
    assert list(a.columns) == [ID_COLUMN, *FEATURE_NAMES, TARGET]
    assert validate_frame(a).ok, validate_frame(a).summary()
    pd.testing.assert_frame_equal(a, synthetic_frame(500, seed=3))
    assert not a.equals(synthetic_frame(500, seed=4))
    for f in FEATURES:
        assert a[f.name].dtype == (np.int64 if f.integral else np.float64)
    assert 0.1 < a[TARGET].mean() < 0.35
    no_target = synthetic_frame(500, seed=3, target=False)
    assert TARGET not in no_target
    pd.testing.assert_frame_equal(no_target, a.drop(columns=[TARGET]))
    clean = synthetic_frame(500, seed=3, undocumented_share=0.0)
    for f in FEATURES:
        if f.documented_codes is not None:
            assert clean[f.name].isin(f.documented_codes).all(), f.name


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_report_has_sections_images_and_numbers(tmp_path: Path) -> None:
    df = synthetic_frame(800, seed=1)
    out = write_profile(data=df, out=tmp_path / "sub" / "profile.html", title="Synthetic <x>")
    assert out == tmp_path / "sub" / "profile.html" and out.exists()
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in page, anchor
    assert "Synthetic &lt;x&gt;" in page and "Synthetic <x>" not in page
    # self-contained: nothing is loaded from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script src" not in page
    images = _images(page)
    assert len(images) >= 5
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert out.stat().st_size < 3_000_000

    s = _summary(page)
    assert s["rows"] == len(df) and s["has_target"]
    assert s["default_rate"] == pytest.approx(df[TARGET].mean())
    assert s["positives"] == int(df[TARGET].sum())
    assert s["duplicate_ids"] == 0
    assert set(s["missing"]) == set(df.columns) and not any(s["missing"].values())
    assert [b["band"] for b in s["age_bands"]] == [b[0] for b in AGE_BANDS]
    assert sum(b["rows"] for b in s["age_bands"]) == len(df)
    assert sum(d["rows"] for d in s["limit_deciles"]) == len(df)
    assert len(s["limit_deciles"]) == 10
    assert {a["feature"] for a in s["univariate_auc"]} == set(FEATURE_NAMES)
    assert all(0.5 <= a["auc"] <= 1 for a in s["univariate_auc"])
    assert s["notes"] and all(n in page for n in map(_escape, s["notes"]))
    for name in FEATURE_NAMES:
        assert name in page


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


@pytest.mark.unit
def test_quirk_counts_for_planted_codes(tmp_path: Path) -> None:
    df, planted = _plant_quirks(synthetic_frame(600, seed=2, undocumented_share=0.0))
    page = write_profile(data=df, out=tmp_path / "p.html").read_text(encoding="utf-8")
    quirks = {(q["feature"], q["code"]): q for q in _summary(page)["quirks"]}
    assert set(quirks) == set(planted)
    for (feature, code), rows in planted.items():
        q = quirks[(feature, code)]
        assert q["rows"] == len(rows), (feature, code)
        assert q["share"] == pytest.approx(len(rows) / len(df))
        assert q["default_rate"] == pytest.approx(df.loc[rows, TARGET].mean())
        fold = dict(next(f for f in FEATURES if f.name == feature).fold)
        assert q["folds_to"] == fold.get(code)
        assert q["handling"].startswith("folded") == (code in fold)
        if code in fold:
            target_rows = df[feature] == fold[code]
            assert q["fold_target_default_rate"] == pytest.approx(
                df.loc[target_rows, TARGET].mean())
    # the visible table carries the same counts
    quirk_html = page[page.index('id="quirks"'):page.index('id="slices"')]
    for (feature, code), rows in planted.items():
        assert re.search(rf"<tr><td class=\"l\">{code}</td><td>{len(rows)}</td>", quirk_html)
        assert f"<h3>{feature}</h3>" in quirk_html


@pytest.mark.unit
def test_report_without_target(tmp_path: Path) -> None:
    df = synthetic_frame(300, seed=5, target=False)
    page = write_profile(data=df, out=tmp_path / "p.html").read_text(encoding="utf-8")
    s = _summary(page)
    assert not s["has_target"] and s["default_rate"] is None and s["univariate_auc"] == []
    assert all(q["default_rate"] is None for q in s["quirks"])
    assert all(b["default_rate"] is None for b in s["age_bands"])
    assert "is absent" in page
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in page
    assert len(_images(page)) >= 4


@pytest.mark.unit
def test_data_text_is_escaped_and_edge_cases(tmp_path: Path) -> None:
    df = synthetic_frame(50, seed=9)
    df[TARGET] = 0  # one class only: AUCs undefined, report still written
    df.loc[[0, 1], ID_COLUMN] = 17
    page = write_profile(data=df, out=tmp_path / "p.html",
                         title='<script>alert("x")</script>').read_text(encoding="utf-8")
    assert "<script>alert" not in page
    s = _summary(page)
    assert s["univariate_auc"] == [] and s["duplicate_ids"] == 3  # rows 0, 1 and ID 17
    with pytest.raises(DataError, match="LIMIT_BAL"):
        write_profile(data=df.drop(columns=["LIMIT_BAL"]), out=tmp_path / "q.html")
    with pytest.raises(DataError, match="no rows"):
        write_profile(data=df.iloc[:0], out=tmp_path / "q.html")


# --------------------------------------------------------------------------------------
# On the real file
# --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_profile_of_the_real_data(tmp_path: Path, real_data_path: Path) -> None:
    from creditrisk.data import load_dataset

    df = load_dataset(real_data_path)
    out = write_profile(data=df, out=tmp_path / "profile.html")
    page = out.read_text(encoding="utf-8")
    s = _summary(page)
    assert s["rows"] == len(df)
    assert s["default_rate"] == pytest.approx(df[TARGET].mean())
    assert f"{len(df):,}" in page
    assert s["duplicate_ids"] == 0
    quirks = {(q["feature"], q["code"]): q["rows"] for q in s["quirks"]}
    for f in FEATURES:
        if f.documented_codes is not None:
            for code in set(f.codes or ()) - set(f.documented_codes):
                assert quirks[(f.name, code)] == int((df[f.name] == code).sum())
    # repayment status is the strongest single signal on this data
    assert s["univariate_auc"][0]["feature"].startswith("PAY_")
    assert s["univariate_auc"][0]["auc"] > 0.65
    assert out.stat().st_size < 3_000_000
