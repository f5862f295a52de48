#!/usr/bin/env python3
"""Writes the short real series of shiftlm's forecasting benchmark
(BENCHMARKS.md, "Forecasting against classical statistics") to data/:

- sunspots_yearly.csv: yearly sunspot numbers 1700-2008 (309 values);
- nile_yearly.csv: the Nile's yearly flow at Aswan 1871-1970 (100 values);
- elnino_monthly.csv: monthly sea surface temperature, El Niño region,
  1950-2010 (732 values);
- realgdp_quarterly.csv: US real GDP 1959Q1-2009Q3 (203 values);
- unemployment_quarterly.csv: the US unemployment rate 1959Q1-2009Q3 (203
  values, the same macrodata table);
- macro_quarterly_long.csv: six of that table's quarterly series (real GDP,
  consumption, investment, government spending, CPI, unemployment) in long
  format, `series,quarter,value`, for `--id series` (6 x 203 rows).

All five ship with statsmodels (statsmodels.datasets), each stating that it
is in the public domain. Read from the statsmodels wheel, so no other
package is needed:

  python3 tools/make_series_csvs.py      (downloads the statsmodels wheel with pip)

With --pmdarima it writes, instead, six more series to data/extra/ (not
committed: they come from R's datasets and forecast packages by way of
pmdarima, MIT, which must be installed: pip install pmdarima), one `value`
column each, the series' own order:

- taylor_halfhourly.csv: half-hourly electricity demand in England and Wales,
  5 June - 27 August 2000 (Taylor 2003; 4032 values);
- wineind_monthly.csv: Australian wine sales by wine makers, 1980-1994 (176);
- ausbeer_quarterly.csv: Australian beer production from 1956 (211; the last, missing, dropped);
- airpassengers_monthly.csv: international airline passengers 1949-1960 (144);
- woolyrnq_quarterly.csv: Australian woollen yarn production from 1965 (119);
- lynx_yearly.csv: Canadian lynx trappings 1821-1934 (114).
"""
import csv
import glob
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

OUT = pathlib.Path(__file__).resolve().parent.parent / "data"


def rows(wheel, name):
    raw = zipfile.ZipFile(wheel).read(f"statsmodels/datasets/{name}/{name}.csv").decode()
    return list(csv.DictReader(io.StringIO(raw)))


def write(path, header, body):
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
    print(f"{path}: {len(body)} rows")


if "--pmdarima" in sys.argv[1:]:
    import pmdarima.datasets as pm

    (OUT / "extra").mkdir(exist_ok=True)
    for name, load in [("taylor_halfhourly", pm.load_taylor), ("wineind_monthly", pm.load_wineind),
                       ("ausbeer_quarterly", pm.load_ausbeer), ("airpassengers_monthly", pm.load_airpassengers),
                       ("woolyrnq_quarterly", pm.load_woolyrnq), ("lynx_yearly", pm.load_lynx)]:
        values = [float(v) for v in load(as_series=False)]
        while values and values[-1] != values[-1]:  # ausbeer ends in missing quarters (NaN)
            values.pop()
        write(OUT / "extra" / f"{name}.csv", ["value"], [[repr(v)] for v in values])
    sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "statsmodels==0.15.0", "--no-deps", "-q", "-d", tmp],
                   check=True)
    wheel = glob.glob(f"{tmp}/statsmodels-*.whl")[0]
    write(OUT / "sunspots_yearly.csv", ["year", "sunspots"],
          [[r["YEAR"].split(".")[0], r["SUNACTIVITY"]] for r in rows(wheel, "sunspots")])
    write(OUT / "nile_yearly.csv", ["year", "flow"], [[r["year"], r["volume"]] for r in rows(wheel, "nile")])
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    write(OUT / "elnino_monthly.csv", ["month", "temperature"],
          [[f"{r['YEAR'].split('.')[0]}-{i + 1:02d}", r[m]] for r in rows(wheel, "elnino") for i, m in enumerate(months)])
    write(OUT / "realgdp_quarterly.csv", ["quarter", "realgdp"],
          [[f"{r['year'].split('.')[0]}-Q{r['quarter'].split('.')[0]}", r["realgdp"]] for r in rows(wheel, "macrodata")])
    write(OUT / "unemployment_quarterly.csv", ["quarter", "unemp"],
          [[f"{r['year'].split('.')[0]}-Q{r['quarter'].split('.')[0]}", r["unemp"]] for r in rows(wheel, "macrodata")])
    macro = rows(wheel, "macrodata")
    write(OUT / "macro_quarterly_long.csv", ["series", "quarter", "value"],
          [[name, f"{r['year'].split('.')[0]}-Q{r['quarter'].split('.')[0]}", r[name]]
           for name in ["realgdp", "realcons", "realinv", "realgovt", "cpi", "unemp"] for r in macro])
