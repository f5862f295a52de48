#!/usr/bin/env python3
"""Writes data/co2_mauna_loa_weekly.csv, the real series shiftlm's
forecasting benchmark uses (BENCHMARKS.md).

Source: weekly atmospheric CO2 at Mauna Loa Observatory, March 1958 to
December 2001 (Keeling, C.D. and T.P. Whorf, 2004, Scripps Institution of
Oceanography / CDIAC, Oak Ridge National Laboratory, U.S. DOE), as shipped
in statsmodels (statsmodels.datasets.co2, which states: "This is public
domain."). Dates become ISO (YYYY-MM-DD); the 59 weeks without data stay
empty, so the file needs `--fill forward`.

  python3 tools/make_co2_csv.py      (downloads the statsmodels wheel with pip; needs no other package)
"""
import csv
import glob
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

OUT = pathlib.Path(__file__).resolve().parent.parent / "data" / "co2_mauna_loa_weekly.csv"

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "statsmodels==0.15.0", "--no-deps", "-q", "-d", tmp],
                   check=True)
    wheel = glob.glob(f"{tmp}/statsmodels-*.whl")[0]
    raw = zipfile.ZipFile(wheel).read("statsmodels/datasets/co2/co2.csv").decode()

rows = list(csv.DictReader(io.StringIO(raw)))
with OUT.open("w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["date", "co2"])
    for r in rows:
        d = r["date"]
        w.writerow([f"{d[:4]}-{d[4:6]}-{d[6:]}", r["co2"]])
print(f"{OUT}: {len(rows)} weeks, {sum(1 for r in rows if not r['co2'])} missing")
