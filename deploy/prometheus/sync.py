#!/usr/bin/env python3
"""Writes the PrometheusRule of the monitoring component from the plain rules file.

deploy/prometheus/alerts.yaml is the one source of the alerting rules; the PrometheusRule
(deploy/kubernetes/components/monitoring/prometheusrule.yaml, for the Prometheus
Operator) carries exactly its groups under `spec`. Run after editing alerts.yaml:

    python3 deploy/prometheus/sync.py           # rewrite the PrometheusRule
    python3 deploy/prometheus/sync.py --check   # exit 1 if it is not what alerts.yaml gives

deploy/validate.sh runs --check, so the two cannot drift apart. Needs PyYAML.
"""

import pathlib
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
SOURCE = DEPLOY / "prometheus" / "alerts.yaml"
TARGET = DEPLOY / "kubernetes" / "components" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yaml by deploy/prometheus/sync.py: do not edit;
# edit alerts.yaml and run `python3 deploy/prometheus/sync.py`. deploy/validate.sh checks
# that this file is what alerts.yaml gives, and alerts.test.yaml tests every rule.
#
# For the Prometheus Operator: its ruleSelector must match these labels (kube-prometheus-
# stack's default is `release: <its release name>`; add that label in your overlay).
"""


class Literal(str):
    """A multi-line string written as a YAML block (`|`), as in alerts.yaml."""


def literal(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


def blocks(value):
    if isinstance(value, dict):
        return {k: blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return Literal(value)
    return value


def rendered():
    groups = yaml.safe_load(SOURCE.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "secretgate",
            "labels": {
                "app.kubernetes.io/name": "legacy-token-service",
                "app.kubernetes.io/component": "secretgate",
            },
        },
        "spec": {"groups": blocks(groups)},
    }
    yaml.add_representer(Literal, literal)
    return HEADER + yaml.dump(rule, sort_keys=False, width=100, allow_unicode=True)


def main():
    text = rendered()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text() if TARGET.exists() else ""
        # Compared as data, so that another PyYAML's line breaking is not a difference.
        same = bool(current) and yaml.safe_load(current) == yaml.safe_load(text)
        if not same or not current.startswith(HEADER):
            print(f"FAILED: {TARGET.relative_to(DEPLOY.parent)} is not what "
                  f"{SOURCE.relative_to(DEPLOY.parent)} gives; run python3 deploy/prometheus/sync.py",
                  file=sys.stderr)
            return 1
        print(f"OK: {TARGET.relative_to(DEPLOY.parent)} matches {SOURCE.relative_to(DEPLOY.parent)}")
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(DEPLOY.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
