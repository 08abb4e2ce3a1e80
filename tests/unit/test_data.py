"""Data import and download: the download path runs against a local HTTP server that
serves an archive the test builds."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from creditrisk import data
from creditrisk.contract import FEATURE_NAMES, ID_COLUMN, TARGET
from creditrisk.errors import DataError
from creditrisk.settings import get_settings, reset_settings
from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.unit


def upstream_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write a frame the way Kaggle's UCI_Credit_Card.csv spells it."""
    out = df.rename(columns={TARGET: "default.payment.next.month"})
    for c in ("LIMIT_BAL", "BILL_AMT1", "PAY_AMT1"):
        out[c] = out[c].astype(float)  # integral floats, as upstream
    out.to_csv(path, index=False)
    return path


def zip_into(archive: Path, member: Path) -> Path:
    """An archive holding one data file, as the UCI download is."""
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(member, member.name)
    return archive


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
            pass

    server = Quiet(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_fetch_downloads_the_archive_and_writes_canonical_parquet(http_dir, tmp_path) -> None:
    root, base = http_dir
    df = synthetic_frame(300, seed=1)
    csv = upstream_csv(df, tmp_path / "default of credit card clients.csv")
    zip_into(root / "default+of+credit+card+clients.zip", csv)
    prov = data.fetch(url=f"{base}/default+of+credit+card+clients.zip")
    assert prov.rows == len(df) and prov.positives == int(df[TARGET].sum())
    assert prov.source_sha256 == data.sha256_of(root / "default+of+credit+card+clients.zip")
    out = pd.read_parquet(prov.canonical_path)
    assert list(out.columns) == [ID_COLUMN, *FEATURE_NAMES, TARGET]
    assert out["AGE"].dtype.kind == "i" and out["LIMIT_BAL"].dtype.kind == "f"
    pd.testing.assert_frame_equal(out, data.load_dataset(), check_dtype=True)
    assert Path(prov.canonical_path).with_suffix(".provenance.json").exists()


def test_fetch_verifies_the_checksum_when_configured(http_dir, tmp_path, monkeypatch) -> None:
    root, base = http_dir
    zip_into(root / "a.zip", upstream_csv(synthetic_frame(50, seed=2), tmp_path / "x.csv"))
    monkeypatch.setenv("CREDITRISK_DATA_SHA256", "0" * 64)
    reset_settings()
    with pytest.raises(DataError, match="does not match the expected"):
        data.fetch(url=f"{base}/a.zip")
    assert not (get_settings().data_dir / "raw" / "a.zip").exists()


def test_fetch_unreachable_gives_a_clear_error(http_dir) -> None:
    _, base = http_dir
    with pytest.raises(DataError, match=r"cannot download .*--from-file"):
        data.fetch(url=f"{base}/missing.zip")


def test_import_local_csv_and_zip(tmp_path) -> None:
    df = synthetic_frame(120, seed=4)
    csv = upstream_csv(df, tmp_path / "UCI_Credit_Card.csv")
    prov = data.import_file(csv)
    assert prov.rows == 120
    z = tmp_path / "copy.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(csv, "inner/UCI_Credit_Card.csv")
    assert data.import_file(z, out=tmp_path / "c.parquet").rows == 120


def test_import_bad_file_reports_and_writes_nothing(tmp_path) -> None:
    df = synthetic_frame(100, seed=5)
    df.loc[[3, 4], "AGE"] = 7
    df.loc[9, "MARRIAGE"] = 8
    csv = upstream_csv(df, tmp_path / "bad.csv")
    with pytest.raises(DataError) as exc:
        data.import_file(csv)
    msg = str(exc.value)
    assert "'AGE'" in msg and "2 row(s)" in msg and "'MARRIAGE'" in msg and "8" in msg
    assert "3 of 100 rows" in msg
    assert not get_settings().canonical_data_path.exists()


def test_unreadable_and_empty_files(tmp_path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        data.read_raw(tmp_path / "x.txt")
    (tmp_path / "e.csv").write_text(",".join(FEATURE_NAMES) + "\n")
    with pytest.raises(DataError, match="no rows"):
        data.read_raw(tmp_path / "e.csv")
    with pytest.raises(DataError, match="no such file"):
        data.load_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="creditrisk data fetch"):
        data.load_dataset()


def test_split_is_stratified_and_deterministic() -> None:
    df = synthetic_frame(1000, seed=6)
    a_train, a_test = data.split(df, test_size=0.2, seed=1)
    _b_train, b_test = data.split(df, test_size=0.2, seed=1)
    assert len(a_test) == 200 and len(a_train) == 800
    pd.testing.assert_frame_equal(a_test, b_test)
    assert abs(a_test[TARGET].mean() - df[TARGET].mean()) < 0.01
    assert set(a_train[ID_COLUMN]).isdisjoint(a_test[ID_COLUMN])


def uci_xls(df: pd.DataFrame, path: Path) -> Path:
    """Write a frame in the layout of UCI's .xls: a first header row X1..X23, Y above the
    real names, the target named 'default payment next month'."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Data")
    names = [ID_COLUMN, *FEATURE_NAMES, "default payment next month"]
    codes = ["", *(f"X{i}" for i in range(1, len(FEATURE_NAMES) + 1)), "Y"]
    for j, (code, name) in enumerate(zip(codes, names, strict=True)):
        sheet.write(0, j, code)
        sheet.write(1, j, name)
    values = df[[ID_COLUMN, *FEATURE_NAMES, TARGET]].to_numpy()
    for i, row in enumerate(values, start=2):
        for j, v in enumerate(row):
            sheet.write(i, j, float(v))
    book.save(str(path))
    return path


def test_fetch_the_uci_xls_layout(http_dir, tmp_path) -> None:
    root, base = http_dir
    df = synthetic_frame(80, seed=7)
    xls = uci_xls(df, tmp_path / "default of credit card clients.xls")
    zip_into(root / "uci.zip", xls)
    prov = data.fetch(url=f"{base}/uci.zip")
    out = data.load_dataset()
    assert prov.rows == 80
    assert out[TARGET].tolist() == df[TARGET].tolist()
    assert out["PAY_0"].tolist() == df["PAY_0"].tolist()
    assert out["AGE"].dtype.kind == "i"
