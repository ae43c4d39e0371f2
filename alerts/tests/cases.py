#!/usr/bin/env python3
"""Writes the promtool unit tests for alerts/*.rules.yml.

promtool compares annotations strictly, so each expected alert must carry its rendered
summary and description. Rather than copy the runbook text into the tests by hand (and let
the copies drift), this script renders the few template forms the rules use ($labels.X,
$value, humanize, humanize1024) for the cases below, and writes `*.test.yml` beside it.
The cases themselves -- inputs, times, and which alerts must or must not fire -- are the
tests; run `python3 alerts/tests/cases.py` after changing a rule's wording and review the diff.
"""

import json
import math
import pathlib
import re
import sys

import yaml  # python3-yaml (Debian), installed by .ci/run

HERE = pathlib.Path(__file__).resolve().parent
RULES = HERE.parent

EXP = 'cluster="gp",instance="exp:9297",job="greenplum-exporter"'
REM = 'cluster="gp",instance="rem:9298",job="greenplum-remediator"'
EXP_LABELS = {"cluster": "gp", "instance": "exp:9297", "job": "greenplum-exporter"}
REM_LABELS = {"cluster": "gp", "instance": "rem:9298", "job": "greenplum-remediator"}
SEG = 'dbid="2",content="0",hostname="sdw1",address="sdw1",port="6002",preferred_role="primary"'
SEG_LABELS = {"dbid": "2", "content": "0", "hostname": "sdw1", "address": "sdw1",
              "port": "6002", "preferred_role": "primary"}


def humanize(v):
    if v == 0:
        return "0"
    prefixes = ["", "k", "M", "G", "T", "P", "E"]
    i = 0
    while abs(v) >= 1000 and i < len(prefixes) - 1:
        v /= 1000
        i += 1
    return f"{v:.4g}{prefixes[i]}"


def humanize1024(v):
    prefixes = ["", "ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    i = 0
    while abs(v) >= 1024 and i < len(prefixes) - 1:
        v /= 1024
        i += 1
    return f"{v:.4g}{prefixes[i]}"


def fmt_value(v):
    # Go's strconv.FormatFloat(v, 'g', -1, 64) for the values used here.
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def render(text, labels, value):
    def sub(m):
        expr = m.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr[len("$labels."):], "")
        if expr == "$value":
            return fmt_value(value)
        if expr == "$value | humanize":
            return humanize(value)
        if expr == "$value | humanize1024":
            return humanize1024(value)
        sys.exit(f"template form not supported by cases.py: {expr}")
    return re.sub(r"{{(.*?)}}", sub, text)


def load_rules(name):
    rules = {}
    for group in yaml.safe_load((RULES / name).read_text())["groups"]:
        for rule in group["rules"]:
            rules[rule["alert"]] = rule
    return rules


def expect(rules, alertname, labels, value):
    rule = rules[alertname]
    all_labels = {**labels, **rule.get("labels", {})}
    return {
        "exp_labels": all_labels,
        "exp_annotations": {k: render(v, all_labels, value)
                            for k, v in rule.get("annotations", {}).items()},
    }


def case(rules, name, series, checks):
    """checks: [(eval_time, alertname, [(labels, value), ...])]; an empty list = must not fire."""
    return {
        "name": name,
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [
            {"eval_time": t, "alertname": a,
             "exp_alerts": [expect(rules, a, l, v) for l, v in firing]}
            for t, a, firing in checks
        ],
    }


def greenplum_cases(r):
    seg = lambda metric, extra="": f"{metric}{{{EXP},{SEG}{extra}}}"
    return [
        case(r, "exporter down fires after 5m, a blip does not", [
            (f"up{{{EXP}}}", "0x10"),
            ('up{cluster="gp2",instance="exp2:9297",job="greenplum-exporter"}', "1 0 0 1 1 1 1 1 1 1 1"),
        ], [
            ("4m", "GreenplumExporterDown", []),
            ("6m", "GreenplumExporterDown", [(EXP_LABELS, 0)]),
        ]),
        case(r, "coordinator down fires after 1m and opts into activate_standby", [
            (f"greenplum_up{{{EXP}}}", "1 0 0 0"),
        ], [
            ("1m", "GreenplumCoordinatorDown", []),
            ("2m", "GreenplumCoordinatorDown", [(EXP_LABELS, 0)]),
        ]),
        case(r, "a coordinator blip shorter than for: does not fire", [
            (f"greenplum_up{{{EXP}}}", "1 0 1 1 1"),
        ], [("2m", "GreenplumCoordinatorDown", []), ("4m", "GreenplumCoordinatorDown", [])]),
        case(r, "double fault fires at once", [
            (f"greenplum_contents_unavailable{{{EXP}}}", "0 1 1"),
        ], [
            ("0m", "GreenplumContentUnavailable", []),
            ("1m", "GreenplumContentUnavailable", [(EXP_LABELS, 1)]),
        ]),
        case(r, "a double fault the catalog hides fires after 3m", [
            (f"greenplum_contents_suspected_unavailable{{{EXP}}}", "0 1 1 1 1 1"),
        ], [
            ("3m", "GreenplumContentSuspectedUnavailable", []),
            ("4m", "GreenplumContentSuspectedUnavailable", [(EXP_LABELS, 1)]),
        ]),
        case(r, "a suspicion during an ordinary failover does not fire", [
            (f"greenplum_contents_suspected_unavailable{{{EXP}}}", "0 1 1 0 0 0"),
        ], [
            ("2m", "GreenplumContentSuspectedUnavailable", []),
            ("5m", "GreenplumContentSuspectedUnavailable", []),
        ]),
        case(r, "segment down fires with its dbid and opts into recover", [
            (seg("greenplum_segment_up"), "1 0 0 0"),
            (f'greenplum_segment_up{{{EXP},dbid="5",content="0",hostname="sdw2",address="sdw2",port="6005",preferred_role="mirror"}}', "1 1 1 1"),
        ], [
            ("1m", "GreenplumSegmentDown", []),
            ("2m", "GreenplumSegmentDown", [({**EXP_LABELS, **SEG_LABELS}, 0)]),
        ]),
        case(r, "a segment blip shorter than for: does not fire", [
            (seg("greenplum_segment_up"), "1 0 1 1"),
        ], [("2m", "GreenplumSegmentDown", []), ("3m", "GreenplumSegmentDown", [])]),
        case(r, "preferred-role alert waits for the resync, then opts into rebalance", [
            (f"greenplum_segments_role_mismatch{{{EXP}}}", "2x20"),
            (f"greenplum_contents_unprotected{{{EXP}}}", "1x5 0x15"),
            (f"greenplum_contents_unavailable{{{EXP}}}", "0x20"),
        ], [
            ("5m", "GreenplumSegmentsNotInPreferredRole", []),
            ("9m", "GreenplumSegmentsNotInPreferredRole", []),
            ("11m", "GreenplumSegmentsNotInPreferredRole", [(EXP_LABELS, 2)]),
        ]),
        case(r, "unprotected content after 5m", [
            (f"greenplum_contents_unprotected{{{EXP}}}", "1x10"),
        ], [
            ("4m", "GreenplumContentUnprotected", []),
            ("6m", "GreenplumContentUnprotected", [(EXP_LABELS, 1)]),
        ]),
        case(r, "mirror not synchronized for 30m while up; a down one is left to SegmentDown", [
            (seg("greenplum_segment_mode", ',mode="not_synchronized"'), "1x40"),
            (seg("greenplum_segment_up"), "1x40"),
            (f'greenplum_segment_mode{{{EXP},dbid="6",content="1",hostname="sdw2",address="sdw2",port="6006",preferred_role="mirror",mode="not_synchronized"}}', "1x40"),
            (f'greenplum_segment_up{{{EXP},dbid="6",content="1",hostname="sdw2",address="sdw2",port="6006",preferred_role="mirror"}}', "0x40"),
        ], [
            ("29m", "GreenplumMirrorNotSynchronized", []),
            ("31m", "GreenplumMirrorNotSynchronized",
             [({**EXP_LABELS, **SEG_LABELS, "mode": "not_synchronized"}, 1)]),
        ]),
        case(r, "mirror WAL lag over 1 GiB for 10m; a small lag does not fire", [
            (f'greenplum_mirror_wal_lag_bytes{{{EXP},content="0",stage="replay"}}', "2147483648x20"),
            (f'greenplum_mirror_wal_lag_bytes{{{EXP},content="0",stage="send"}}', "0x20"),
            (f'greenplum_mirror_wal_lag_bytes{{{EXP},content="1",stage="replay"}}', "1000000x20"),
        ], [
            ("9m", "GreenplumMirrorWalLagHigh", []),
            ("11m", "GreenplumMirrorWalLagHigh",
             [({**EXP_LABELS, "content": "0"}, 2147483648)]),
        ]),
        case(r, "mirror on its primary's host after an hour", [
            (f"greenplum_contents_mirror_on_primary_host{{{EXP}}}", "3x70"),
        ], [
            ("59m", "GreenplumMirrorOnPrimaryHost", []),
            ("61m", "GreenplumMirrorOnPrimaryHost", [(EXP_LABELS, 3)]),
        ]),
        case(r, "host imbalance names the overloaded host only", [
            (f'greenplum_host_acting_primaries{{{EXP},hostname="sdw2"}}', "2x20"),
            (f'greenplum_host_preferred_primaries{{{EXP},hostname="sdw2"}}', "1x20"),
            (f'greenplum_host_acting_primaries{{{EXP},hostname="sdw1"}}', "0x20"),
            (f'greenplum_host_preferred_primaries{{{EXP},hostname="sdw1"}}', "1x20"),
        ], [
            ("14m", "GreenplumHostImbalance", []),
            ("16m", "GreenplumHostImbalance", [({**EXP_LABELS, "hostname": "sdw2"}, 2)]),
        ]),
        case(r, "FTS flapping fires, a quiet history does not", [
            (f"greenplum_fts_events_total{{{EXP}}}", "0+1x60"),
            ('greenplum_fts_events_total{cluster="gp2",instance="exp2:9297",job="greenplum-exporter"}', "14x60"),
        ], [
            ("5m", "GreenplumFtsEventRateHigh", []),
            ("60m", "GreenplumFtsEventRateHigh", [(EXP_LABELS, 60)]),
        ]),
        case(r, "no standby configured for 15m", [
            (f"greenplum_standby_configured{{{EXP}}}", "0x20"),
        ], [
            ("14m", "GreenplumStandbyNotConfigured", []),
            ("16m", "GreenplumStandbyNotConfigured", [(EXP_LABELS, 0)]),
        ]),
        case(r, "standby configured but not streaming opts into start_standby", [
            (f"greenplum_standby_configured{{{EXP}}}", "1x10"),
            (f'greenplum_standby_replication_state{{{EXP},state="streaming"}}', "1 0x9"),
            (f'greenplum_standby_replication_state{{{EXP},state="disconnected"}}', "0 1x9"),
            (f"greenplum_up{{{EXP}}}", "1x10"),
        ], [
            ("2m", "GreenplumStandbyNotStreaming", []),
            ("3m", "GreenplumStandbyNotStreaming", [(EXP_LABELS, 1)]),
        ]),
        case(r, "standby alert stays quiet while the coordinator itself is down", [
            (f"greenplum_standby_configured{{{EXP}}}", "1x10"),
            (f'greenplum_standby_replication_state{{{EXP},state="streaming"}}', "0x10"),
            (f"greenplum_up{{{EXP}}}", "0x10"),
        ], [("5m", "GreenplumStandbyNotStreaming", [])]),
        case(r, "standby streaming but not synchronous", [
            (f"greenplum_standby_sync{{{EXP}}}", "0x20"),
            (f'greenplum_standby_replication_state{{{EXP},state="streaming"}}', "1x20"),
        ], [
            ("9m", "GreenplumStandbyNotInSync", []),
            ("11m", "GreenplumStandbyNotInSync", [(EXP_LABELS, 0)]),
        ]),
        case(r, "standby WAL lag over 256 MiB", [
            (f'greenplum_standby_wal_lag_bytes{{{EXP},stage="replay"}}', "536870912x20"),
            (f'greenplum_standby_wal_lag_bytes{{{EXP},stage="send"}}', "0x20"),
        ], [
            ("9m", "GreenplumStandbyWalLagHigh", []),
            ("11m", "GreenplumStandbyWalLagHigh", [(EXP_LABELS, 536870912)]),
        ]),
        case(r, "a failing collector fires while the coordinator answers", [
            (f'greenplum_exporter_collector_success{{{EXP},collector="replication"}}', "0x20"),
            (f'greenplum_exporter_collector_success{{{EXP},collector="segments"}}', "1x20"),
            (f"greenplum_up{{{EXP}}}", "1x20"),
        ], [
            ("9m", "GreenplumCollectorFailing", []),
            ("11m", "GreenplumCollectorFailing", [({**EXP_LABELS, "collector": "replication"}, 0)]),
        ]),
        case(r, "collectors failing because the coordinator is down are left to CoordinatorDown", [
            (f'greenplum_exporter_collector_success{{{EXP},collector="segments"}}', "0x20"),
            (f"greenplum_up{{{EXP}}}", "0x20"),
        ], [("15m", "GreenplumCollectorFailing", [])]),
    ]


def remediator_cases(r):
    return [
        case(r, "remediator down after 5m", [(f"up{{{REM}}}", "0x10")], [
            ("4m", "GreenplumRemediatorDown", []),
            ("6m", "GreenplumRemediatorDown", [(REM_LABELS, 0)]),
        ]),
        case(r, "a failed verification fires, successes do not", [
            (f'greenplum_remediator_actions_total{{{REM},action="recover",result="failed"}}', "0 0 1 1"),
            (f'greenplum_remediator_actions_total{{{REM},action="rebalance",result="succeeded"}}', "0 1 2 3"),
        ], [
            ("1m", "GreenplumRemediationFailed", []),
            ("3m", "GreenplumRemediationFailed",
             [({**REM_LABELS, "action": "recover", "result": "failed"}, 1)]),
        ]),
        case(r, "pending approvals fire at once", [
            (f"greenplum_remediator_pending_approvals{{{REM}}}", "0 1 1"),
        ], [
            ("0m", "GreenplumRemediationAwaitingApproval", []),
            ("1m", "GreenplumRemediationAwaitingApproval", [(REM_LABELS, 1)]),
        ]),
        case(r, "an open breaker fires", [
            (f"greenplum_remediator_breaker_open{{{REM}}}", "0 1"),
        ], [
            ("0m", "GreenplumRemediatorBreakerOpen", []),
            ("1m", "GreenplumRemediatorBreakerOpen", [(REM_LABELS, 1)]),
        ]),
        case(r, "paused for more than 4h", [
            ('greenplum_remediator_paused{instance="rem:9298",job="greenplum-remediator"}', "1x300"),
        ], [
            ("3h", "GreenplumRemediatorPausedTooLong", []),
            ("4h1m", "GreenplumRemediatorPausedTooLong",
             [({"instance": "rem:9298", "job": "greenplum-remediator"}, 1)]),
        ]),
        case(r, "approvals without operator tokens fire after 15m", [
            (f"greenplum_remediator_operator_auth_enabled{{{REM}}}", "0x20"),
        ], [
            ("14m", "GreenplumRemediatorApprovalsUnauthenticated", []),
            ("16m", "GreenplumRemediatorApprovalsUnauthenticated", [(REM_LABELS, 0)]),
        ]),
        case(r, "operator tokens configured: silent", [
            (f"greenplum_remediator_operator_auth_enabled{{{REM}}}", "1x20"),
        ], [("16m", "GreenplumRemediatorApprovalsUnauthenticated", [])]),
    ]


def write(name, rules_file, cases):
    doc = {"rule_files": [f"../{rules_file}"], "evaluation_interval": "1m", "tests": cases}
    header = "# Generated by cases.py from its case list and the rules' annotations: edit cases.py.\n"
    (HERE / name).write_text(header + yaml.safe_dump(doc, sort_keys=False, width=200))


def main():
    write("greenplum.test.yml", "greenplum.rules.yml",
          greenplum_cases(load_rules("greenplum.rules.yml")))
    write("remediator.test.yml", "remediator.rules.yml",
          remediator_cases(load_rules("remediator.rules.yml")))


if __name__ == "__main__":
    main()
