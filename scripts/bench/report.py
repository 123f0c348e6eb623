"""Write the convert benchmark report: the "## Machine" and "## convert"
sections of BENCHMARKS.md (every other section of an existing file, such as
"## load", is kept as it is and where it is) and a PNG plot of throughput and
peak RSS per tool. Called by scripts/bench.sh; reads only what it measured.
"""
import argparse
import csv
import os
import re
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("--csv", required=True)
ap.add_argument("--runs", required=True)
ap.add_argument("--meta", required=True)
ap.add_argument("--doc", required=True)
ap.add_argument("--png", required=True)
args = ap.parse_args()

meta = {}
with open(args.meta) as f:
    for line in f:
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v

with open(args.csv, newline="") as f:
    rows = list(csv.DictReader(f))
for r in rows:
    r["median"] = float(r["median_s"]) if r["median_s"] else None
    r["cells"] = int(r["cells"])
    r["rss"] = int(r["peak_rss_mb"]) if r["peak_rss_mb"] else None

def group(r):
    t = r["tool"]
    return (0 if t == "rasterstage" else 1 if t.startswith("read floor") else 2 if t.startswith("gdalwarp")
            else 3)


rows.sort(key=lambda r: (r["flavour"] != "byte", group(r)))  # stable: CSV order within a group
by_key = {(r["flavour"], r["tool"], r["case"], r["format"]): r for r in rows}
logs = os.path.join(os.path.dirname(args.csv), "logs")


def ratio(r):
    if not r["vs"] or r["median"] is None:
        return None
    tool, case, fmt = r["vs"].split("|")
    ref = by_key.get((r["flavour"], tool, case, fmt))
    if not ref or not ref["median"]:
        return None
    return r["median"] / ref["median"]


def fmt_s(r):
    if r["status"] == "timeout":
        return f"> {float(r['median_s']):.0f} (timeout)"
    if r["status"] == "failed":
        return "failed"
    m = r["median"]
    s = f"{m:.2f}" if m < 100 else f"{m:.0f}"
    if int(r["reps"]) > 1:
        s += f" ({float(r['min_s']):.2f}-{float(r['max_s']):.2f})" if m < 100 else ""
    return s


def cells_per_s(r):
    if r["status"] == "timeout":
        return f"< {r['cells'] / float(r['median_s']) / 1e6:.1f} M"
    if r["median"] is None:
        return "-"
    return f"{r['cells'] / r['median'] / 1e6:.1f} M"


def rs_rows_from_log(flavour, case, fmt):
    """rows (= valid cells for passthrough) from rasterstage's summary line."""
    safe = re.sub(r"[^A-Za-z0-9_./-]", "_", f"{flavour}-rasterstage-{case.replace(' ', '_')}-{fmt}-1.log")
    p = os.path.join(logs, safe)
    try:
        m = re.search(r"(\d+) rows", open(p).read())
        return int(m.group(1)) if m else None
    except OSError:
        return None


quick = meta.get("mode") == "quick"

# Machine load during the runs (1-minute load average read just before each repetition).
with open(args.runs, newline="") as f:
    runs = list(csv.DictReader(f))
loads_rs = [float(r["load1"]) for r in runs if r.get("load1") and r["tool"] == "rasterstage"]
loads_other = [float(r["load1"]) for r in runs if r.get("load1") and r["tool"] != "rasterstage"]
w, h = meta["size"].split("x")
out = []
out.append("## Machine\n")
out.append(f"- Run: {meta['date']}, `scripts/bench.sh{' --quick' if quick else ''}` "
           f"({meta['reps']} repetition(s) per case, wall time of the whole run {int(meta.get('bench_seconds', 0)) // 60} min)")
out.append(f"- CPU: {meta['cpu']}, {meta['cores']} cores; RAM {meta['ram_gib']} GiB; {meta['os']}")
out.append(f"- {meta['gdal']} (gdalwarp, gdalinfo, and the GDAL rasterstage links); "
           f"rasterio {meta['rasterio_gdal']} (its wheel's own GDAL)")
out.append(f"- {meta['pylibs']}")
for k, v in meta.items():
    if k.startswith("rerun"):
        out.append(f"- Rerun {v}")
out.append(f"- {meta['rustc']}; rasterstage at commit {meta['commit']} "
           f"(binary sha256 {meta.get('binary_sha256', '?')}, working-tree diff of src/ sha256 "
           f"{meta.get('src_diff_sha256', '?')}); release profile")
out.append(f"- Load average (1/5/15 min) at the start: {meta['load_start']}; at the end: "
           f"{meta.get('load_end', '?')}. The machine is shared: other engineers compile on the same "
           f"{meta['cores']} cores, so absolute times carry noise; the ratios come from the same run.")
if loads_rs and loads_other:
    out.append(f"- 1-minute load average read just before each repetition: rasterstage runs "
               f"median {statistics.median(loads_rs):.2f} (max {max(loads_rs):.2f}), other tools "
               f"median {statistics.median(loads_other):.2f} (max {max(loads_other):.2f}). "
               f"Anything above {meta['cores']} means other processes competed for the CPU.")
out.append("")
out.append("## convert\n")
out.append(f"Inputs (made by `scripts/bench/make_inputs.py`, cached in `$BENCH` = "
           f"`${{RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}}`): global EPSG:4326, 30 arc-seconds, "
           f"{int(w):,} x {int(h):,} = {int(meta['cells']) / 1e6:,.0f} M cells, tiled 512 x 512, deflate; "
           f"`byte`: Byte, ocean = nodata 255, land 0..200 smooth + noise ({meta['input_byte_mb']} MB on disk); "
           f"`float32`: Float32, NaN ocean, smooth field, predictor 3 ({meta['input_float32_mb']} MB). "
           f"About a third of the cells are land.\n")
out.append("Median wall time of the whole process over the repetitions (min-max in brackets); "
           "cells/s = SOURCE cells / median time; peak RSS = `/usr/bin/time -v` maximum resident set "
           "size (largest repetition); ratio = the tool's median / the median of the rasterstage case "
           "in the same row's comparison (above 1 means rasterstage is faster). rasterstage runs with "
           "its defaults (threads = cores, window 1024, its own bounded GDAL cache); gdalwarp with "
           "`-multi -wo NUM_THREADS=ALL_CPUS`. CPU s = user + system seconds of the process (median), "
           "which depends far less than wall time on other processes competing for the cores; "
           "CPU s / median s shows how many cores a tool kept busy. Every output directory is deleted "
           "before each repetition.\n")

for flavour in ("byte", "float32"):
    fr = [r for r in rows if r["flavour"] == flavour]
    if not fr:
        continue
    # rasterstage rows first, by format, resolution, method (a rerun appends rows at the end).
    def rs_key(r):
        method = r["case"].split()[0]
        res = 2 if method == "passthrough" else (1 if "1'" in r["case"] else 0)
        return ({"parquet": 0, "zarr": 1}.get(r["format"], 2), res,
                {"average": 0, "sum": 1, "mode": 2}.get(method, 3))
    fr = sorted((r for r in fr if r["tool"] == "rasterstage"), key=rs_key) + \
        [r for r in fr if r["tool"] != "rasterstage"]
    out.append(f"### {flavour}\n")
    out.append("| tool | case | output | median s | CPU s | cells/s | peak RSS MB | ratio vs rasterstage |")
    out.append("|---|---|---|---:|---:|---:|---:|---|")
    for r in fr:
        rt = ratio(r)
        if r["tool"] == "rasterstage":
            rts = "-"
        elif rt is None:
            rts = "-"
        else:
            ref = r["vs"].split("|")
            prefix = "> " if r["status"] == "timeout" else ""
            rts = f"{prefix}{rt:.2f}x (vs {ref[1]} → {ref[2]})"
        mark = " †" if r.get("carried_from") else ""
        cpu = r.get("cpu_s") or "-"
        out.append(f"| {r['tool']}{mark} | {r['case']} | {r['format']} | {fmt_s(r)} | {cpu} | {cells_per_s(r)} | "
                   f"{r['rss'] if r['rss'] is not None else '-'} | {rts} |")
    out.append("")
carried = sorted({r["carried_from"] for r in rows if r.get("carried_from")})
if carried:
    out.append(f"† not rerun this time (`--skip`): figures from the run of {', '.join(carried)} on the "
               f"same machine and inputs; its ratio is against this run's rasterstage.\n")

# Targets (issue #5 / #2), computed from the table above.
out.append("### Targets, from this run\n")


def get(flavour, tool, case, fmt):
    return by_key.get((flavour, tool, case, fmt))


lines = []
for flavour in ("byte", "float32"):
    avg = get(flavour, "rasterstage", "average 0.05°", "parquet")
    sm = get(flavour, "rasterstage", "sum 0.05°", "parquet")
    gw = get(flavour, "gdalwarp", "average 0.05°", "GTiff")
    fl = get(flavour, "read floor: rasterio block_windows", "read every block", "-")
    fl2 = get(flavour, "read floor: gdalinfo -checksum (GDAL 3.6)", "read every block", "-")
    if not (avg and avg["median"]):
        continue
    for label, r in (("average", avg), ("sum", sm)):
        if not (r and r["median"]):
            continue
        if gw and gw["median"]:
            x = gw["median"] / r["median"]
            lines.append(f"| {flavour} | {label} 0.05° ≥ 3x faster than gdalwarp -r average | "
                         f"{x:.2f}x | {'met' if x >= 3 else 'NOT met'} |")
        for name, f_ in (("rasterio", fl), ("gdalinfo -checksum", fl2)):
            if f_ and f_["median"]:
                x = r["median"] / f_["median"]
                lines.append(f"| {flavour} | {label} 0.05° within 2x of the read floor ({name}) | "
                             f"{x:.2f}x the floor | {'met' if x <= 2 else 'NOT met'} |")
    # Every resolution and format that both tools ran: the target holds for sum, not one case.
    for res in ("0.05°", "1'"):
        gs = get(flavour, "gdalwarp", f"sum {res}", "GTiff")
        for fmt in ("parquet", "zarr"):
            r = get(flavour, "rasterstage", f"sum {res}", fmt)
            if not (gs and r and r["median"]):
                continue
            x = float(gs["median_s"]) / r["median"]
            pre = "> " if gs["status"] == "timeout" else ""
            verdict = "met" if x >= 100 else ("NOT met" if gs["status"] != "timeout" else "not decided (timeout)")
            lines.append(f"| {flavour} | sum {res} → {fmt} ≥ 100x faster than gdalwarp -r sum {res} | {pre}{x:.0f}x | "
                         f"{verdict} |")
    pt = get(flavour, "rasterstage", "passthrough", "parquet")
    if pt and pt["median"]:
        valid = rs_rows_from_log(flavour, "passthrough", "parquet")
        if valid:
            x = valid / pt["median"] / 1e6
            lines.append(f"| {flavour} | passthrough to Parquet ≥ 20 M valid cells/s | {x:.1f} M/s "
                         f"({valid / 1e6:.0f} M valid cells) | {'met' if x >= 20 else 'NOT met'} |")
    rs_rss = [r["rss"] for r in rows if r["flavour"] == flavour and r["tool"] == "rasterstage" and r["rss"]]
    if rs_rss:
        m = max(rs_rss)
        lines.append(f"| {flavour} | peak RSS ≤ 256 MB for every rasterstage convert | max {m} MB | "
                     f"{'met' if m <= 256 else 'NOT met'} |")
out.append("| input | target | measured | |")
out.append("|---|---|---|---|")
out.extend(lines)
out.append("")
if quick:
    out.append("(quick mode: smaller inputs, fixed start-up costs weigh more; not the figures of record)\n")

out.append("### Commands\n")
out.append("As run for the `byte` input (the `float32` runs differ only in the input path). "
           "`$BENCH` is the bench directory, `python` the venv's.\n")
out.append("```")
seen = set()
for r in rows:
    if r["flavour"] != "byte" and r["tool"] != "rasterstage":
        continue
    c = r["command"]
    key = (r["tool"], r["case"], r["format"])
    if key in seen or r["flavour"] != "byte":
        continue
    seen.add(key)
    out.append(f"# {r['tool']}: {r['case']}" + (f" -> {r['format']}" if r["format"] != "-" else ""))
    out.append(c)
out.append("```\n")
out.append(f"![throughput and peak RSS per tool]({os.path.basename(args.png)})\n")
out.append(f"Raw figures: `$BENCH/results-{meta['mode']}.csv` (per case) and `$BENCH/runs-{meta['mode']}.csv` "
           f"(every repetition); each run's output in `$BENCH/logs/`.\n")
new_sections = {"Machine": "\n".join(out[:out.index("## convert\n")]).strip() + "\n",
                "convert": "\n".join(out[out.index("## convert\n"):]).strip() + "\n"}

# Merge into an existing document: replace our sections, keep the others in place.
head = "# Benchmarks\n\nMeasured by `scripts/bench.sh` (convert) on this project's machine; every figure below comes from a run of that script.\n"
sections = []  # (name, text)
if os.path.exists(args.doc):
    text = open(args.doc).read()
    parts = re.split(r"(?m)^(?=## )", text)
    head = parts[0] if not parts[0].startswith("## ") else head
    for p in parts[1:] if not parts[0].startswith("## ") else parts:
        name = p.splitlines()[0][3:].strip()
        sections.append((name, p))
names = [n for n, _ in sections]
for name in ("Machine", "convert"):
    if name in names:
        i = names.index(name)
        sections[i] = (name, new_sections[name])
    else:
        # Machine first, convert right after Machine (before anything else such as load).
        pos = 0 if name == "Machine" else (names.index("Machine") + 1 if "Machine" in names else 0)
        sections.insert(pos, (name, new_sections[name]))
        names = [n for n, _ in sections]
doc = head.rstrip("\n") + "\n\n" + "\n".join(t.rstrip("\n") + "\n" for _, t in sections)
with open(args.doc, "w") as f:
    f.write(doc)

# Plot: throughput and peak RSS per tool/case, one row of panels per input.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

flavours = [fl for fl in ("byte", "float32") if any(r["flavour"] == fl for r in rows)]
heights = [sum(1 for r in rows if r["flavour"] == fl) for fl in flavours]
fig, axes = plt.subplots(len(flavours), 2, figsize=(13, 0.32 * sum(heights) + 1.6 * len(flavours)),
                         gridspec_kw={"height_ratios": heights}, squeeze=False)
for i, fl in enumerate(flavours):
    fr = [r for r in rows if r["flavour"] == fl][::-1]
    labels = [f"{r['tool']}: {r['case']}" + (f" → {r['format']}" if r["format"] != "-" else "") for r in fr]
    tp = [(r["cells"] / (r["median"] if r["status"] == "ok" else float(r["median_s"] or "inf")) / 1e6)
          if r["median_s"] else 0 for r in fr]
    rss = [r["rss"] or 0 for r in fr]
    colors = ["tab:blue" if r["tool"] == "rasterstage" else
              ("tab:gray" if r["tool"].startswith("read floor") else "tab:orange") for r in fr]
    ax = axes[i][0]
    ax.barh(labels, tp, color=colors)
    ax.set_xlabel("source M cells/s (higher is better)")
    ax.set_title(f"{fl}: throughput ({w} x {h})")
    for y, (v, r) in enumerate(zip(tp, fr)):
        ax.text(v, y, f" {v:.0f}" + (" (timeout)" if r["status"] == "timeout" else ""), va="center", fontsize=7)
    ax = axes[i][1]
    ax.barh(labels, rss, color=colors)
    ax.axvline(256, color="red", lw=0.8, ls="--")
    ax.set_xlabel("peak RSS MB (lower is better; red: 256 MB target)")
    ax.set_title(f"{fl}: peak memory")
    ax.set_yticklabels([])
    for y, v in enumerate(rss):
        ax.text(v, y, f" {v}", va="center", fontsize=7)
    axes[i][0].tick_params(axis="y", labelsize=7)
fig.suptitle(f"rasterstage convert vs alternatives, {meta['date']}, {meta['cores']} cores "
             f"(load {meta['load_start']} → {meta.get('load_end', '?')})", fontsize=9)
fig.tight_layout()
fig.savefig(args.png, dpi=110)
print(f"wrote {args.doc} and {args.png}")
