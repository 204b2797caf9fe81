"""The `seconetbench` command (also `python -m seconetbench`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from seconetbench import __version__
from seconetbench.backends import BACKENDS
from seconetbench.errors import SeconetError
from seconetbench.parsers import PARSERS

DEFAULT_CONFIG = "config/config.yaml"


def _load_config(path: str | None) -> dict[str, Any]:
    from seconetbench import config

    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    if path is None:
        # No config at hand: the defaults, with an empty sweep (deploy/teardown need only testbed keys).
        return config.validate({"sweep": {"workloads": ["latency"], "single": {
            "solutions": ["bridge"], "filters": ["none"], "containers": [2]}},
            "workloads": {"latency": {"kind": "latency"}}})
    return config.load_files(path)


def _backend(cfg: dict[str, Any], prefix: str | None = None):
    from seconetbench.backends import for_config

    return for_config(cfg, prefix)


def cmd_preflight(args: argparse.Namespace) -> int:
    from seconetbench import config, preflight

    cfg = _load_config(args.config) if args.config else None
    report = preflight.report(cfg, prefix=config.run_prefix(cfg) if cfg else None)
    refused = [p for p in report["pinned"] if p["refused"]]
    if args.json:
        print(json.dumps(report, indent=1))
        return 1 if refused else 0
    print(f"kernel {report['kernel']} (config {'readable' if report['kernel_config_available'] else 'not readable'})")
    print("\ntools:")
    for name, tool in report["tools"].items():
        state = tool["path"] or "MISSING"
        print(f"  {name:8} {state:28} {tool['purpose']}")
    print("\ncombinations:")
    for combo in report["combinations"]:
        verdict = "yes" if combo["supported"] else f"no: {combo['reason']}"
        print(f"  {combo['scenario']:6} {combo['solution']:8} {combo['filter']:9} {verdict}")
    if report["tunnels"]:
        print("\ntunnels (multi-host):")
        for tunnel in report["tunnels"]:
            verdict = "yes" if tunnel["supported"] else f"no: {tunnel['reason']}"
            print(f"  {tunnel['tunnel']:10} {verdict}")
    print("\nimplementations (decided by probes in a scratch namespace; auto = the kernel's when its probe passes):")
    for row in report["implementations"]:
        kernel = {True: "kernel available", False: "kernel NOT available", None: "no kernel probe"}[row["kernel_available"]]
        print(f"  {row['kind']:8} {row['technology']:10} offers {'/'.join(row['offered']):17} auto -> "
              f"{row['resolved']:9} ({kernel})")
        for item in row["evidence"]:
            print(f"      {item['probe']:8} {item['command']}: {item['said']}")
    for row in report["pinned"]:
        verdict = f"REFUSED: {row['refused']}" if row["refused"] else "available"
        print(f"  pinned: {row['key']}: {row['implementation']} {verdict}")
    return 1 if refused else 0


def cmd_setups(args: argparse.Namespace) -> int:
    from seconetbench import preflight
    from seconetbench.sweep import expand

    sweep = expand(_load_config(args.config), check_machine=True)
    # what runs each setup's tunnel or solution here (probes decide `auto`)
    rows = [{**s.to_dict(), "resolved_implementation": preflight.resolved_implementation(s), "supported": True,
             "reason": None} for s in sweep.setups]
    rows += [{**e.setup.to_dict(), "resolved_implementation": None, "supported": False, "reason": e.reason}
             for e in sweep.excluded]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print(f"{row['id']}  ({row['resolved_implementation']})" if row["supported"]
                  else f"{row['id']}  (excluded: {row['reason']})")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """plan --config F [--json]: what the sweep builds and how long it takes (logic in plan.py)."""
    from seconetbench import plan

    report = plan.plan_config(_load_config(args.config), plan.load_overheads(args.overheads) if args.overheads else None)
    print(json.dumps(report, indent=1) if args.json else plan.format_plan(report))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from seconetbench.sweep import resolve_setup

    cfg = _load_config(args.config)
    try:
        # what the config's sweep would deploy; without --config, an id outside the default
        # sweep is read with the defaults
        setup = resolve_setup(cfg, args.setup, outside_sweep=args.config is None)
    except ValueError as exc:
        raise SeconetError(str(exc)) from None
    from seconetbench import preflight

    backend = _backend(cfg, args.prefix)
    # before waiting for the host lock; remote hosts (ssh, vm) check themselves at deploy
    refused = preflight.pinned_unavailable(setup) if backend.capabilities.technologies_here else None
    if refused:
        raise SeconetError(f"setup {setup.id}: {refused}")
    from seconetbench.testbed.groups import testbed_groups

    # the first testbed group's locks, as a measurement on it holds them (the group it deploys on)
    with testbed_groups(cfg)[0].locked(cfg["testbed"]["lock_timeout_s"]):
        deployment = backend.deploy(setup, verify=not args.no_verify)
    print(json.dumps(deployment.describe(), indent=1))
    return 0


def cmd_teardown(args: argparse.Namespace) -> int:
    from seconetbench.testbed.groups import testbed_groups

    cfg = _load_config(args.config)
    # without --prefix, every testbed group of the config (testbed.ssh.groups, testbed.vm.groups)
    backends = [_backend(cfg, args.prefix)] if args.prefix else [g.backend() for g in testbed_groups(cfg)]
    removed: dict[str, list[str]] = {}
    for backend in backends:
        for kind, names in backend.finish().items():
            removed.setdefault(kind, []).extend(names)
    print(json.dumps(removed))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from seconetbench.backends.base import BaseBackend
    from seconetbench.runner import HostLock
    from seconetbench.testbed import cleanup

    backend_class = BACKENDS.get(args.backend)
    if backend_class.clean_remote.__func__ is not BaseBackend.clean_remote.__func__:
        # what the run left elsewhere: a cluster's namespaces, the ssh hosts' namespaces and daemons,
        # on every testbed group (each group's objects carry its own prefix, testbed/groups.py)
        from seconetbench.testbed.groups import group_count, group_prefix, group_testbed

        testbed = {**_load_config(args.config)["testbed"], "backend": args.backend}
        count = group_count(testbed)
        removed: dict[str, list[str]] = {}
        for index in range(1, count + 1):
            prefix = group_prefix(args.prefix, index, count) if args.prefix else None
            for kind, names in backend_class.clean_remote(group_testbed(testbed, index), prefix).items():
                removed.setdefault(kind, []).extend(names)
        print(json.dumps(removed))
        return 0
    if args.force:
        removed = cleanup.remove(args.prefix)
    else:
        with HostLock(timeout_s=0):  # never pull the testbed from under a running measurement
            removed = cleanup.remove(args.prefix)
    print(json.dumps(removed))
    left = cleanup.leftovers(args.prefix)
    if any(left.values()):
        print(f"still present: {left}", file=sys.stderr)
        return 1
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    """hosts check | hosts install: the ssh backend's hosts (logic in remote/hosts.py)."""
    import tempfile

    from seconetbench.remote import hosts

    cfg = _load_config(args.config)
    if cfg["testbed"]["backend"] != "ssh":
        raise SeconetError(f"testbed.backend of {args.config} is {cfg['testbed']['backend']!r}; `hosts` works on the "
                           "hosts of the ssh backend (testbed.backend: ssh, testbed.ssh.hosts; docs/ssh.md)")

    def progress(line: str) -> None:
        print(f"[hosts {args.action}] {line}", file=sys.stderr, flush=True)

    # master connections of this command only (never those of a running sweep), ended at its end
    with tempfile.TemporaryDirectory(prefix="scn-hosts-") as directory:
        control = Path(directory) / "ssh"
        if args.action == "check":
            report = hosts.check_hosts(cfg, control, progress)
        else:
            report = hosts.install_hosts(cfg, control, progress)
    if args.json:
        print(json.dumps(report, indent=1))
    elif args.action == "check":
        _print_hosts_check(report)
    if report["unknown_binaries"]:
        print(f"no Debian package known for {', '.join(report['unknown_binaries'])}: install them on every host by "
              "hand", file=sys.stderr)
    failed = [h["name"] for h in report["hosts"] if not h.get("ok", h.get("error") is None)]
    if failed:
        print(f"seconetbench hosts {args.action}: failed on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _print_hosts_check(report: dict[str, Any]) -> None:
    for host in report["hosts"]:
        group = f" [group {host['group']}]" if "group" in host else ""  # testbed.ssh.groups
        print(f"{host['name']} ({host['address']}:{host['port']}){group}: {'ok' if host['ok'] else 'NOT USABLE'}")
        if host["reachable"]:
            tools = host["tools"]
            missing = sorted(name for name, path in tools.items() if path is None)
            print(f"  root      {'yes' if host['uid'] == 0 else 'NO'} (id -u: {host['uid']})")
            print(f"  kernel    {host['kernel']}")
            print(f"  tools     {len(tools) - len(missing)} of {len(tools)} present"
                  + (f"; missing: {' '.join(missing)}" if missing else ""))
            print("  packages  " + (f"missing: {' '.join(host['missing_packages'])}" if host["missing_packages"]
                                    else "all installed"))
            underlay = host["underlay"]
            print(f"  underlay  {underlay['dev']} " + (f"mtu {underlay['mtu']}" if underlay["exists"]
                                                      else f"MISSING ({underlay['error']})"))
            clock = host["clock"]
            if clock:
                print(f"  clock     offset {clock['offset_ms']:+.3f} ms ± {clock['uncertainty_ms']:.3f} ms from this "
                      f"machine (best round trip {clock['round_trip_ms']:.3f} ms of {clock['samples']})")
            for source, state in host["clock_sync"].items():
                print(f"  sync      {source}: " + ", ".join(f"{k}: {v}" for k, v in state.items()))
            if not host["clock_sync"]:
                print("  sync      neither chrony, timedatectl nor ptp4l answered")
        for problem in host["problems"]:
            print(f"  problem   {problem}")
    if report["pairs"]:
        print(f"\nclock offsets between hosts (bound {report['max_clock_offset_ms']} ms, "
              "testbed.ssh.max_clock_offset_ms):")
        for pair in report["pairs"]:
            print(f"  {'-'.join(pair['hosts']):12} {pair['offset_ms']:+.3f} ms ± {pair['uncertainty_ms']:.3f} ms  "
                  f"{pair['verdict']}: {pair['consequence']}")


def cmd_local_k8s(args: argparse.Namespace) -> int:
    from seconetbench.engines import localk8s

    return localk8s.main(args.args)


def cmd_parse(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from seconetbench import parsers
    from seconetbench.fsutil import atomic_path

    parsed = parsers.parse_file(args.tool, args.file)
    table = pa.Table.from_pandas(parsed.samples, preserve_index=False)
    table = table.replace_schema_metadata({
        **(table.schema.metadata or {}),
        b"seconetbench.tool": args.tool.encode(),
        b"seconetbench.source": str(Path(args.file).resolve()).encode(),
        b"seconetbench.summary": json.dumps(parsed.summary, default=str).encode(),
    })
    with atomic_path(args.output) as tmp:
        pq.write_table(table, tmp)
    print(json.dumps({"rows": table.num_rows, "columns": table.column_names, "summary": parsed.summary},
                     default=str))
    return 0


def cmd_findings(args: argparse.Namespace) -> int:
    """findings RESULTS [--out DIR] (logic in findings.py; docs/findings.md)."""
    from seconetbench import findings

    results = findings.build_in(args.results, args.out)
    print(findings.overview(results))
    return 0


def _metric_threshold(text: str) -> tuple[str, float]:
    metric, _, pct = text.partition("=")
    try:
        return metric, float(pct)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use METRIC=PERCENT, e.g. throughput_mbps=3") from None


def cmd_compare(args: argparse.Namespace) -> int:
    """compare BASE CANDIDATE… | compare --series DIR (logic in compare.py; docs/compare.md)."""
    from seconetbench import compare

    thresholds = compare.thresholds_for(args.threshold_pct, dict(args.threshold))
    if args.series:
        if args.runs:
            raise SeconetError("--series DIR compares the runs under DIR; give no BASE/CANDIDATE with it")
        report = compare.series(args.series, thresholds)
        print(json.dumps(report, indent=1) if args.json else compare.format_series(report))
        return compare.REGRESSION_EXIT if report["regressed"] else 0
    if len(args.runs) < 2:
        raise SeconetError("name a baseline and at least one candidate results directory (or --series DIR)")
    report = compare.compare(args.runs[0], args.runs[1:], thresholds)
    if args.out:
        compare.write_outputs(report, args.out)
    print(json.dumps(report, indent=1) if args.json else compare.format_report(report, show_all=args.all))
    return compare.REGRESSION_EXIT if report["regressions"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seconetbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"seconetbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("preflight", help="which technologies and tools this machine supports, and why not")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", help="also check the implementations this config pins (sweep.*.implementations); "
                                    "exit 1 when one is not available here")
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("setups", help="every setup id of the sweep")
    p.add_argument("--config", help=f"config file (default: {DEFAULT_CONFIG})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_setups)

    p = sub.add_parser("plan", help="targets, deploys, parse jobs and the estimated wall time of the sweep, before "
                                    "it runs (a range with adaptive repetitions)")
    p.add_argument("--config", help=f"config file (default: {DEFAULT_CONFIG})")
    p.add_argument("--json", action="store_true", help="the plan as JSON (estimate_s; estimate_s_min and "
                                                       "estimate_s_max with adaptive repetitions)")
    p.add_argument("--overheads", help="a measured overheads file instead of the package's data/overheads.yaml "
                                       "(bench/plan_slice.py --calibrate writes one)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("deploy", help="deploy one setup and print it as JSON")
    p.add_argument("setup", help="setup id, e.g. single-bridge-iptables-c8")
    p.add_argument("--config", help="config file whose sweep holds the setup, deployed exactly as the sweep "
                   f"measures it, with its testbed keys (default: {DEFAULT_CONFIG} and, for ids "
                   "outside its sweep, the defaults)")
    p.add_argument("--prefix", help="name prefix of the testbed objects (default: from the config)")
    p.add_argument("--no-verify", action="store_true", help="skip the isolation check")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("teardown", help="remove the deployment of this config's prefix")
    p.add_argument("--config")
    p.add_argument("--prefix")
    p.set_defaults(func=cmd_teardown)

    p = sub.add_parser("clean", help="remove every namespace, link and process the project left")
    p.add_argument("--prefix", help="only this run prefix (default: every scn* object)")
    p.add_argument("--force", action="store_true", help="even while a measurement holds the host lock")
    p.add_argument("--backend", choices=BACKENDS.names(), default="netns",
                   help="kubernetes: delete the run's namespaces in the cluster (context from --config); "
                        "ssh: every host's namespaces and daemons of the run (hosts from --config), then this "
                        "machine's; netns and docker: this machine's objects (docker containers and engine included)")
    p.add_argument("--config", help=f"config file for the kubernetes context or the ssh hosts (default: {DEFAULT_CONFIG})")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("hosts", help="the ssh backend's hosts: check them, or install what the sweep needs there")
    p.add_argument("action", choices=("check", "install"),
                   help="check: per host SSH, root, kernel, tools, underlay device and MTU, clock offset; "
                        "install: the sweep's Debian packages over SSH (apt-get, only the missing ones)")
    p.add_argument("--config", required=True, help="config file with testbed.backend: ssh and testbed.ssh")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout (progress stays on stderr)")
    p.set_defaults(func=cmd_hosts)

    p = sub.add_parser("local-k8s", help="the local single-node Kubernetes cluster for tests: up|down|status",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_local_k8s)

    p = sub.add_parser("compare", help="candidate runs against a baseline run, per cell and metric; exit 3 on a "
                                       "regression (docs/compare.md)")
    p.add_argument("runs", nargs="*", metavar="RUN", help="BASE CANDIDATE [CANDIDATE...]: results directories "
                   "(or their tables/ directories)")
    p.add_argument("--series", metavar="DIR", help="change points over the results directories under DIR, in the "
                   "order they were measured (jumpavg); exit 3 when the newest run is in a regressed group")
    p.add_argument("--threshold-pct", type=float, default=5.0,
                   help="a regression is a ratio whose 95 %% CI lies beyond this many percent on the metric's bad side "
                        "(default 5)")
    p.add_argument("--threshold", type=_metric_threshold, action="append", default=[], metavar="METRIC=PCT",
                   help="the threshold of one metric (rtt_ms, delay_ms, throughput_mbps, cpu_s_per_gbit); repeatable")
    p.add_argument("--all", action="store_true", help="list every compared cell, not only regressions and improvements")
    p.add_argument("--out", metavar="DIR", help="also write compare.json, compare.txt, ratio.html/.svg and summary.html")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("parse", help="run one parser on one raw file")
    # The registry itself: its parser modules (pandas) are imported only when `parse` runs.
    p.add_argument("tool", choices=PARSERS, metavar="TOOL", help="one of: %(choices)s")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="output .parquet")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("findings", help="check the paper's findings on a results directory's tables; writes "
                                        "findings.md and findings.html (docs/findings.md)")
    p.add_argument("results", metavar="RESULTS", help="a results directory (or its tables/ directory)")
    p.add_argument("--out", metavar="DIR", help="where to write them (default: RESULTS)")
    p.set_defaults(func=cmd_findings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    needs_root = args.command in ("deploy", "teardown", "clean", "local-k8s")
    if needs_root and os.geteuid() != 0:
        print(f"seconetbench {args.command}: needs root (network namespaces); run it with sudo", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except SeconetError as exc:  # an unknown name too (UnknownNameError); anything else is a bug: traceback
        print(f"seconetbench {args.command}: error: {exc}", file=sys.stderr)
        return 1
