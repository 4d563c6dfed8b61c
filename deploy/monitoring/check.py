#!/usr/bin/env python3
"""Checks the Grafana dashboard of the monitoring profile, and the metrics
the dashboard and the alert rules read (run by scripts/monitoring.sh).

  check.py dashboard FILE --promtool PROMTOOL
      The JSON parses as a dashboard; every panel has a unique id and a
      gridPos inside the 24-column grid that overlaps no other panel; every
      query names a data source and a variable the dashboard defines; and
      every PromQL expression parses, by Prometheus' own parser (`promtool
      check rules` on a rule file made of the expressions: promtool 2.42
      has no command to check an expression alone).

  check.py live URL --dashboard FILE --rules N
      Against a running Prometheus at URL: the N rules of the rule files
      are loaded, every dashboard expression evaluates, and every metric
      name the dashboard and the loaded rules query is among the names
      Prometheus has scraped (/api/v1/label/__name__/values). Names the
      rules themselves record count as present.

  check.py targets URL --expect INSTANCE,... [--after EPOCH] [--timeout S]
      Waits (up to S seconds, default 60) until Prometheus' scrape targets
      are exactly the INSTANCEs (the `instance` label), every one up and
      scraped after EPOCH (so after the traffic a check wants to see).

Exits 1 naming every problem; only the Python standard library is used.
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

# Grafana's own variables, and what they are replaced with to evaluate a query.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}
# What a dashboard variable is replaced with: its "All" (every value).
ALL = ".*"

# Words of PromQL that are no metric names where a name could stand.
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}


def fail(problems):
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(1)


def walk_panels(panels):
    """Every panel, rows' nested ones included."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def variables(dashboard):
    return {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr, defined):
    """The expression with each $var / ${var} replaced; unknown ones are
    returned as the second value."""
    unknown = []

    def replace(match):
        name = match.group(1) or match.group(2)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        if name in defined:
            return ALL
        unknown.append(name)
        return match.group(0)

    text = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)
    return text, unknown


def queries(dashboard):
    """(panel title, refId, expression with variables replaced) of every target."""
    defined = variables(dashboard)
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr, _ = substitute(target.get("expr", ""), defined)
            yield panel.get("title", "?"), target.get("refId", "?"), expr


def metric_names(expr):
    """The metric names an expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        if word.lower() in KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def check_layout(dashboard):
    problems = []
    seen_ids = {}
    boxes = []
    for panel in walk_panels(dashboard.get("panels", [])):
        title = panel.get("title", "?")
        pid = panel.get("id")
        if not isinstance(pid, int):
            problems.append(f"panel {title!r}: no integer id")
        elif pid in seen_ids:
            problems.append(f"panels {seen_ids[pid]!r} and {title!r} share id {pid}")
        else:
            seen_ids[pid] = title
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(isinstance(grid.get(k), int) for k in "hwxy"):
            problems.append(f"panel {title!r}: gridPos needs integer h, w, x and y: {grid}")
            continue
        h, w, x, y = (grid[k] for k in "hwxy")
        if h < 1 or w < 1 or x < 0 or y < 0 or x + w > 24:
            problems.append(f"panel {title!r}: gridPos {grid} is outside the 24-column grid")
        for other_title, (ox, oy, ow, oh) in boxes:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                problems.append(f"panels {other_title!r} and {title!r} overlap")
        boxes.append((title, (x, y, w, h)))
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r}: no query")
        if not panel.get("datasource") and not all(t.get("datasource") for t in targets):
            problems.append(f"panel {title!r}: no data source")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problems.append(f"panel {title!r}: refIds missing or repeated: {refs}")
        for target in targets:
            if not target.get("expr", "").strip():
                problems.append(f"panel {title!r} query {target.get('refId')}: no expression")
            _, unknown = substitute(target.get("expr", ""), variables(dashboard))
            if unknown:
                problems.append(f"panel {title!r} query {target.get('refId')}: undefined variables {unknown}")
    return problems


def check_dashboard(path, promtool):
    try:
        with open(path, encoding="utf-8") as file:
            dashboard = json.load(file)
    except (OSError, ValueError) as err:
        fail([f"{path}: {err}"])
    problems = [f"{path}: no {key}" for key in ("uid", "title", "schemaVersion", "panels")
                if key not in dashboard]
    problems += check_layout(dashboard)
    exprs = list(queries(dashboard))
    # Each expression a recording rule, so that promtool parses it.
    with tempfile.NamedTemporaryFile("w", suffix=".yml", encoding="utf-8") as rules:
        rules.write("groups:\n  - name: dashboard\n    rules:\n")
        for index, (_, _, expr) in enumerate(exprs):
            rules.write(f"      - record: dashboard:query_{index}\n        expr: {json.dumps(expr)}\n")
        rules.flush()
        result = subprocess.run([promtool, "check", "rules", rules.name],
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        for index, (title, ref, expr) in enumerate(exprs):
            # promtool names the failing rule by its position (1-based).
            if re.search(rf"\brule {index + 1}\b|dashboard:query_{index}\b", output):
                problems.append(f"panel {title!r} query {ref}: {expr} does not parse")
        problems.append(f"promtool check rules on the dashboard's expressions:\n{output.strip()}")
    if problems:
        fail(problems)
    print(f"{path}: {sum(1 for _ in walk_panels(dashboard['panels']))} panels, "
          f"{len(exprs)} expressions parse, ids unique, layout valid")


def get(url, path, **params):
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}{'?' + query if query else ''}", timeout=10) as response:
        return json.load(response)


def check_live(url, path, rules_expected):
    with open(path, encoding="utf-8") as file:
        dashboard = json.load(file)
    problems = []
    groups = get(url, "/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    if len(rules) != rules_expected:
        problems.append(f"Prometheus loaded {len(rules)} rules, the rule files hold {rules_expected}")
    recorded = {rule["name"] for rule in rules if rule["type"] == "recording"}
    scraped = set(get(url, "/api/v1/label/__name__/values")["data"])
    wanted = {}
    for title, ref, expr in queries(dashboard):
        try:
            answer = get(url, "/api/v1/query", query=expr)
        except OSError as err:
            answer = {"status": "error", "error": str(err)}
        if answer.get("status") != "success":
            problems.append(f"panel {title!r} query {ref}: {answer.get('error')}")
        for name in metric_names(expr):
            wanted.setdefault(name, set()).add(f"dashboard panel {title!r}")
    for rule in rules:
        for name in metric_names(rule["query"]):
            wanted.setdefault(name, set()).add(f"rule {rule['name']}")
    missing = sorted(name for name in wanted if name not in scraped and name not in recorded)
    for name in missing:
        problems.append(f"metric {name} is not scraped (read by {', '.join(sorted(wanted[name]))})")
    if problems:
        fail(problems)
    print(f"{url}: {len(rules)} rules loaded; all {len(wanted)} metric names the dashboard and "
          f"the rules read exist; every dashboard query evaluates")


def target_problems(url, expected, after):
    targets = get(url, "/api/v1/targets", state="active")["data"]["activeTargets"]
    found = {}
    problems = []
    for target in targets:
        instance = target["labels"].get("instance", target["scrapeUrl"])
        found[instance] = target
        if target["health"] != "up":
            problems.append(f"{instance} ({target['scrapeUrl']}) is {target['health']}: {target['lastError']}")
            continue
        # RFC 3339 with nanoseconds: seconds are enough.
        scraped = datetime.datetime.fromisoformat(target["lastScrape"][:19] + "+00:00").timestamp()
        if scraped < after:
            problems.append(f"{instance} not scraped since the traffic")
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"no scrape target for {missing}")
    if extra:
        problems.append(f"scrape targets nothing runs: {extra}")
    return problems


def check_targets(url, expected, after, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            problems = target_problems(url, expected, after)
        except OSError as err:
            problems = [f"{url}: {err}"]
        if not problems:
            print(f"{url}: all {len(expected)} scrape targets up ({', '.join(sorted(expected))})")
            return
        if time.monotonic() > deadline:
            fail(problems)
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    offline = sub.add_parser("dashboard")
    offline.add_argument("file")
    offline.add_argument("--promtool", default="promtool")
    live = sub.add_parser("live")
    live.add_argument("url")
    live.add_argument("--dashboard", required=True)
    live.add_argument("--rules", type=int, required=True)
    targets = sub.add_parser("targets")
    targets.add_argument("url")
    targets.add_argument("--expect", required=True)
    targets.add_argument("--after", type=float, default=0)
    targets.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    if args.command == "dashboard":
        check_dashboard(args.file, args.promtool)
    elif args.command == "live":
        check_live(args.url.rstrip("/"), args.dashboard, args.rules)
    else:
        expected = [name for name in args.expect.split(",") if name]
        check_targets(args.url.rstrip("/"), expected, args.after, args.timeout)


if __name__ == "__main__":
    main()
