#!/usr/bin/env python3
"""Checks the Grafana dashboards in this folder (python3 and its standard library only).

For every dashboard: the JSON parses; it has a uid, a title and schemaVersion >= 36; the
`datasource` (type datasource, query prometheus) and `cluster` variables exist; panel ids are
unique; every panel has a gridPos inside the 24-column grid and no two overlap; every panel and
every target uses a datasource by variable (never a hard-coded uid, never an `__inputs`
placeholder); every target has a non-empty expr with balanced (), [] and {}; every selector of
a per-cluster metric filters `cluster="$cluster"`.

With `--metrics FILE` (one exposed metric family name per line, as printed by
`greenplum-exporter list-metrics` and `greenplum-remediator list-metrics`): every `greenplum_*`
name in every expr is exported (a histogram family also covers its `_bucket`, `_sum` and
`_count` series), so a renamed metric cannot silently empty a panel. Missing names are printed
with the panel title.

If `promtool` is on PATH (and `--no-promtool` is not given), every expr, with the Grafana
variables replaced by sample values, must also parse as PromQL.

Prints one line per check and a final `dashboards: N passed, M failed`; exits 1 on any failure.

Reuse from another script (e.g. a live check against a real Prometheus):

    sys.path.insert(0, "dashboards"); import check_dashboards as cd
    for path in cd.DASHBOARDS:
        for title, expr in cd.exprs(cd.load(path)):
            query = cd.render(expr, cluster="gp")
"""

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
DASHBOARDS = sorted(HERE.glob("*.json"))

METRIC = re.compile(r"\bgreenplum_[a-zA-Z0-9_]*[a-zA-Z0-9]")
SELECTOR = re.compile(r"\b(greenplum_[a-zA-Z0-9_]*[a-zA-Z0-9])\s*(\{[^}]*\})?")
CLUSTER_MATCHER = re.compile(r'\bcluster\s*=\s*"\$(?:cluster|\{cluster\})"')
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRID_WIDTH = 24

# The remediator's process-wide series carry no `cluster` label: filtering them would empty
# the panel. Every other greenplum_* selector must filter on the dashboard's cluster.
NO_CLUSTER_LABEL = {
    "greenplum_remediator_paused",
    "greenplum_remediator_journal_errors_total",
    "greenplum_remediator_webhook_requests_total",
    "greenplum_remediator_events_total",
    "greenplum_remediator_build_info",
}

# Sample values for Grafana's variables, to hand an expr to Prometheus or promtool.
DEFAULT_VARS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "cluster": "gp",
    "datasource": "prometheus",
}

results = []


def record(ok, what, detail=""):
    results.append(bool(ok))
    line = f"{'ok  ' if ok else 'FAIL'} {what}"
    if detail and not ok:
        line += "\n     " + str(detail).replace("\n", "\n     ")
    print(line)
    return ok


# ---------------------------------------------------------------------------- reusable helpers

def load(path):
    """The dashboard at `path` as a dict (raises on invalid JSON)."""
    return json.loads(pathlib.Path(path).read_text())


def panels(dashboard):
    """Every panel, rows included, and the panels nested in collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []) or [])
    return out


def exprs(dashboard):
    """Every (panel title, expr) pair of the dashboard, in layout order; annotation queries are
    included as ("annotation: NAME", expr)."""
    pairs = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []) or []:
            if "expr" in target:
                pairs.append((panel.get("title", f"panel {panel.get('id')}"), target["expr"]))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("expr") or (annotation.get("target") or {}).get("expr")
        if expr:
            pairs.append((f"annotation: {annotation.get('name', '?')}", expr))
    return pairs


def render(expr, **values):
    """`expr` with Grafana's variables ($x, ${x}, ${x:fmt}) replaced by `values` over
    DEFAULT_VARS, ready for Prometheus' API or promtool."""
    table = {**DEFAULT_VARS, **values}

    def sub(match):
        name = match.group(1) or match.group(2)
        return table.get(name, match.group(0))

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub,
                  expr)


def metric_names(expr):
    """The greenplum_* identifiers of an expr (string literals removed first)."""
    return sorted(set(METRIC.findall(strip_strings(expr))))


def strip_strings(expr):
    return re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)


def balanced(expr):
    """None when (), [] and {} balance outside string literals, else what is wrong."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for i, ch in enumerate(strip_strings(expr)):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack[-1] != pairs[ch]:
                return f"unexpected {ch!r} at {i}"
            stack.pop()
    return f"unclosed {''.join(stack)!r}" if stack else None


def family(name, families):
    """The exported family `name` belongs to, or None."""
    if name in families:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return None


def base_name(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------------------- checks

def datasource_problem(ds, datasource_vars):
    """None when `ds` references a datasource variable of the dashboard."""
    if ds is None:
        return "no datasource"
    uid = ds.get("uid") if isinstance(ds, dict) else ds
    if not isinstance(uid, str) or not uid:
        return f"datasource without uid: {ds!r}"
    match = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", uid)
    if not match:
        return f"hard-coded datasource uid {uid!r}"
    name = match.group(1) or match.group(2)
    if name not in datasource_vars:
        return f"datasource {uid!r} is not a datasource variable of this dashboard" + (
            " (an __inputs placeholder)" if name.startswith("DS_") else "")
    if isinstance(ds, dict) and ds.get("type") not in (None, "prometheus"):
        return f"datasource type {ds.get('type')!r}, expected prometheus"
    return None


def check_dashboard(path, families=None):
    name = path.name
    try:
        dashboard = load(path)
    except (OSError, ValueError) as err:
        record(False, f"{name}: parses as JSON", err)
        return None
    record(isinstance(dashboard, dict), f"{name}: parses as JSON")
    if not isinstance(dashboard, dict):
        return None

    uid = dashboard.get("uid")
    record(isinstance(uid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""),
           f"{name}: fixed uid ({uid})", "uid must be 1-40 characters of [A-Za-z0-9_-]")
    record(isinstance(dashboard.get("title"), str) and dashboard["title"].strip(),
           f"{name}: title ({dashboard.get('title')})")
    schema = dashboard.get("schemaVersion")
    record(isinstance(schema, int) and schema >= 36, f"{name}: schemaVersion >= 36 ({schema})")
    record("__inputs" not in dashboard and "${DS_" not in path.read_text(),
           f"{name}: importable as is (no __inputs placeholders)")
    for key in ("tags", "time", "refresh"):
        record(bool(dashboard.get(key)), f"{name}: has {key}")

    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds_var = variables.get("datasource", {})
    record(ds_var.get("type") == "datasource" and ds_var.get("query") == "prometheus",
           f"{name}: variable datasource (type datasource, query prometheus)", ds_var)
    datasource_vars = {n for n, v in variables.items() if v.get("type") == "datasource"}
    cluster = variables.get("cluster", {})
    query = cluster.get("query")
    query = query.get("query", "") if isinstance(query, dict) else (query or "")
    record(cluster.get("type") == "query" and "label_values" in query
           and not cluster.get("multi")
           and datasource_problem(cluster.get("datasource"), datasource_vars) is None,
           f"{name}: variable cluster (label_values query, single value, datasource by variable)",
           cluster)

    all_panels = panels(dashboard)
    ids = [p.get("id") for p in all_panels]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    record(all(isinstance(i, int) for i in ids) and not duplicates,
           f"{name}: {len(ids)} unique integer panel ids", f"duplicates: {duplicates}")
    check_grid(name, dashboard)

    for panel in all_panels:
        title = panel.get("title", f"panel {panel.get('id')}")
        where = f"{name}: panel {panel.get('id')} {title!r}"
        targets = panel.get("targets", []) or []
        is_row = panel.get("type") == "row"
        if is_row and "datasource" not in panel and not targets:
            continue
        problems = []
        problem = datasource_problem(panel.get("datasource"), datasource_vars)
        if problem:
            problems.append(f"panel: {problem}")
        if not is_row and panel.get("type") != "text" and not targets:
            problems.append("no targets")
        for target in targets:
            ref = target.get("refId", "?")
            problem = datasource_problem(target.get("datasource"), datasource_vars)
            if problem:
                problems.append(f"target {ref}: {problem}")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"target {ref}: empty expr")
                continue
            problem = balanced(expr)
            if problem:
                problems.append(f"target {ref}: unbalanced expr: {problem}")
            for metric, matchers in SELECTOR.findall(strip_strings_keep_selectors(expr)):
                if base_name(metric) in NO_CLUSTER_LABEL:
                    if matchers and re.search(r"\bcluster\s*=", matchers):
                        problems.append(f"target {ref}: {metric} has no cluster label, "
                                        "filtering on it empties the panel")
                elif not CLUSTER_MATCHER.search(matchers or ""):
                    problems.append(f'target {ref}: {metric} not filtered by cluster="$cluster"')
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            problems.append(f"duplicate refIds {refs}")
        record(not problems, f"{where}: datasource by variable, {len(targets)} valid target(s)",
               "\n".join(problems))

    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("builtIn"):
            continue
        problem = datasource_problem(annotation.get("datasource"), datasource_vars)
        expr = annotation.get("expr") or (annotation.get("target") or {}).get("expr") or ""
        problem = problem or (balanced(expr) if expr.strip() else "empty expr")
        record(problem is None, f"{name}: annotation {annotation.get('name')!r}", problem)

    if families is not None:
        check_metric_names(name, dashboard, families)
    return dashboard


def strip_strings_keep_selectors(expr):
    """Removes string literals outside {...} so that `"..."` inside a label matcher survives
    for the cluster check while a quoted greenplum_* text elsewhere is not taken for a metric."""
    out, depth, i = [], 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'`" and depth == 0:
            end = expr.find(ch, i + 1)
            while end != -1 and ch != "`" and expr[end - 1] == "\\":
                end = expr.find(ch, end + 1)
            i = len(expr) if end == -1 else end + 1
            out.append('""')
            continue
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        out.append(ch)
        i += 1
    return "".join(out)


def check_grid(name, dashboard):
    problems, boxes = [], []
    for panel in dashboard.get("panels", []):
        label = f"panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(
                isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{label}: gridPos missing or not integers: {grid!r}")
            continue
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_WIDTH:
            problems.append(f"{label}: gridPos {grid} outside the {GRID_WIDTH}-column grid")
        for other, (ox, oy, ow, oh) in boxes:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                problems.append(f"{label} overlaps {other}")
        boxes.append((label, (x, y, w, h)))
        for child in panel.get("panels", []) or []:
            if not isinstance(child.get("gridPos"), dict):
                problems.append(f"panel {child.get('id')} {child.get('title')!r} "
                                "(in a collapsed row): gridPos missing")
    record(not problems, f"{name}: every panel has a gridPos, none overlap", "\n".join(problems))


def check_metric_names(name, dashboard, families):
    missing = {}
    for title, expr in exprs(dashboard):
        for metric in metric_names(expr):
            if family(metric, families) is None:
                missing.setdefault(metric, []).append(title)
    used = sorted({m for _, e in exprs(dashboard) for m in metric_names(e)})
    for metric in used:
        titles = missing.get(metric)
        record(titles is None, f"{name}: {metric} is exported",
               f"{metric} is not in the metric list; used by: "
               + ", ".join(dict.fromkeys(titles or [])))


def check_promtool(path, dashboard):
    promtool = shutil.which("promtool")
    pairs = exprs(dashboard)
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_, expr) in enumerate(pairs):
        rules.append(f"      - record: dashboard_expr_{i}")
        rules.append("        expr: " + json.dumps(render(expr)))
    with tempfile.TemporaryDirectory() as tmp:
        rule_file = pathlib.Path(tmp) / "exprs.rules.yml"
        rule_file.write_text("\n".join(rules) + "\n")
        proc = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True,
                              text=True)
    output = (proc.stdout + proc.stderr).strip()
    # promtool names the failing rule by its position; translate back to the panel.
    for match in set(re.findall(r"rule (\d+)", output)):
        index = int(match) - 1
        if 0 <= index < len(pairs):
            output += f"\n  rule {match} = panel {pairs[index][0]!r}: {pairs[index][1]}"
    record(proc.returncode == 0, f"{path.name}: promtool parses all {len(pairs)} exprs", output)


def read_families(metrics_file):
    return {line.strip() for line in pathlib.Path(metrics_file).read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", help="file with one exposed metric family name per line")
    parser.add_argument("--no-promtool", action="store_true",
                        help="do not parse the exprs with promtool even if it is on PATH")
    parser.add_argument("dashboards", nargs="*", type=pathlib.Path,
                        help="dashboard files (default: every *.json beside this script)")
    args = parser.parse_args(argv)

    families = None
    if args.metrics:
        families = read_families(args.metrics)
        record(families, f"metric list {args.metrics} is not empty")
    paths = args.dashboards or DASHBOARDS
    record(paths, f"dashboards found ({', '.join(p.name for p in paths)})")
    use_promtool = not args.no_promtool and shutil.which("promtool")
    for path in paths:
        dashboard = check_dashboard(path, families)
        if dashboard is not None and use_promtool:
            check_promtool(path, dashboard)
    if not use_promtool:
        print("note: promtool not used, exprs were not parsed as PromQL")

    failed = results.count(False)
    print(f"dashboards: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
