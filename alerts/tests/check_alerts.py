#!/usr/bin/env python3
"""Checks the alerting configuration as a whole.

1. `promtool check rules` and `promtool test rules` on every rule file and test file;
2. `amtool check-config` on the example Alertmanager configuration, and its routing: opt-in
   alerts reach the remediator AND people, everything else reaches people only;
3. with `--metrics FILE` (the exposed family names printed by `greenplum-exporter list-metrics`
   and `greenplum-remediator list-metrics`), that every `greenplum_*` name used in a rule exists,
   so a renamed metric cannot silently kill an alert.

Prints one line per check and a final `N passed, M failed`; exits 1 on any failure.
"""

import argparse
import pathlib
import re
import subprocess
import sys

import yaml

ALERTS = pathlib.Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\bgreenplum_[a-z0-9_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

results = []


def record(ok, what, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f"\n     {detail}" if detail and not ok else ""))


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def rule_files():
    return sorted(ALERTS.glob("*.rules.yml"))


def check_promtool():
    for path in rule_files():
        code, out = run(["promtool", "check", "rules", str(path)])
        record(code == 0, f"promtool check rules {path.name}", out)
    for path in sorted((ALERTS / "tests").glob("*.test.yml")):
        code, out = run(["promtool", "test", "rules", str(path)])
        record(code == 0, f"promtool test rules {path.name}", out)


def check_alertmanager():
    config = ALERTS / "alertmanager.yml"
    code, out = run(["amtool", "check-config", str(config)])
    record(code == 0, "amtool check-config alertmanager.yml", out)
    for labels, expected in [
        (["alertname=GreenplumSegmentDown", "remediation=recover"], "greenplum-remediator,oncall"),
        (["alertname=GreenplumSegmentsNotInPreferredRole", "remediation=rebalance"],
         "greenplum-remediator,oncall"),
        (["alertname=GreenplumCoordinatorDown", "remediation=activate_standby"],
         "greenplum-remediator,oncall"),
        (["alertname=GreenplumContentUnprotected"], "oncall"),
        (["alertname=GreenplumSegmentDown", "remediation=drop_database"], "oncall"),
    ]:
        code, out = run(["amtool", "config", "routes", "test", f"--config.file={config}",
                         "cluster=gp", *labels])
        got = out.splitlines()[0].strip() if out else ""
        record(code == 0 and got == expected, f"route {' '.join(labels)} -> {expected}",
               f"got {got!r}")


def rules_opting_in():
    """Every alert with a `remediation` label names an action of the remediator's closed set."""
    actions = {"recover", "recover_full", "rebalance", "start_standby", "init_standby",
               "activate_standby"}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                action = rule.get("labels", {}).get("remediation")
                if action is not None:
                    record(action in actions, f"{rule['alert']} opts into a known action ({action})")
                for key in ("summary", "description"):
                    record(bool(rule.get("annotations", {}).get(key)),
                           f"{rule['alert']} has a {key}")
                record(rule.get("labels", {}).get("severity") in {"critical", "warning", "info"},
                       f"{rule['alert']} has a severity")


def check_example_policy():
    """Each rule of the example policy matches an alert that exists and opts into its action."""
    policy = ALERTS.parent / "remediator" / "examples" / "policy.yml"
    alerts = {}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                alerts[rule["alert"]] = rule.get("labels", {}).get("remediation")
    for rule in yaml.safe_load(policy.read_text())["rules"]:
        name = rule["match"]["alertname"]
        record(name in alerts, f"policy rule {rule['name']}: alert {name} exists")
        record(alerts.get(name) == rule["action"],
               f"policy rule {rule['name']}: {name} opts into {rule['action']}",
               f"the alert's remediation label is {alerts.get(name)!r}")


def known(name, families):
    if name in families:
        return True
    return any(name.endswith(s) and name[: -len(s)] in families for s in HISTOGRAM_SUFFIXES)


def check_metric_names(metrics_file):
    families = {line.strip() for line in pathlib.Path(metrics_file).read_text().splitlines()
                if line.strip()}
    record(len(families) > 0, f"metric list {metrics_file} is not empty")
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in sorted(set(METRIC.findall(rule["expr"]))):
                    record(known(name, families), f"{rule['alert']}: {name} is exported",
                           f"{name} is not in the exporters' metric lists")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", help="file with one exposed metric family name per line")
    args = parser.parse_args()
    check_promtool()
    check_alertmanager()
    rules_opting_in()
    check_example_policy()
    if args.metrics:
        check_metric_names(args.metrics)
    failed = results.count(False)
    print(f"alerts: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
