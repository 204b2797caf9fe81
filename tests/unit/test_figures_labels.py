"""Every figure that compares setups or technologies names what ran each one (the identity column
`implementation`) in its labels, through one helper (figures._common.implementation_label)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import vl_convert

from seconetbench import figures, tables
from seconetbench.figures import _common
from tests.unit import tablegen
from tests.unit.test_figures_convergence import _build as build, _walk as walk
from tests.unit.test_policy_update import recorded_as

pytestmark = pytest.mark.unit

BASELINE = "single-bridge-none-c2"
USERSPACE = "single-bridge-iptables-c2"  # given another implementation than its baseline below
MULTI = ["multi-wireguard-none-c4", "multi-vxlan-none-c4"]
THROUGHPUT_WORKLOADS = ["throughput_64", "throughput_653", "throughput_1370"]
# encoding channels that name marks on an axis or in a legend (tooltips may show the bare id)
LABEL_CHANNELS = ("x", "y", "color", "xOffset", "yOffset", "strokeDash", "shape")


def with_implementation(frame: pd.DataFrame, setup: str, implementation: str) -> pd.DataFrame:
    return frame.assign(implementation=frame["implementation"].where(frame["setup"] != setup, implementation))


def security_table(setups: list[str]) -> pd.DataFrame:
    rows = []
    for number, setup in enumerate(setups, start=1):
        scenario, solution, filter_, tunnel, containers = tablegen.setup_parts(setup)
        rows.append({"setup": setup, "scenario": scenario, "solution": solution, "filter": filter_, "tunnel": tunnel,
                     "implementation": "userspace" if tunnel == "wireguard" else "kernel", "containers": containers, "workload": "isolation", "rep": 1,
                     "group": "g1", "pair": "c01-c02", "flow": number, "check": "isolation", "source": "c01", "destination": "c02",
                     "protocol": "udp", "port": 1, "whitelisted": True, "observed": True, "verdict": "ok",
                     "detail": None})
    return tables.conform(pd.DataFrame(rows), "security").to_pandas()


@pytest.fixture(scope="module")
def sweep_tables(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """A small sweep in which one filtered single-host setup ran in userspace and its no-filter
    baseline in the kernel (as when a solution's datapath differs), plus two multi-host tunnels."""
    single = [BASELINE, USERSPACE]
    setups = single + MULTI
    latency = tablegen.latency_table(setups=setups, reps=6, probes=5)
    throughput = tablegen.throughput_table(setups=setups, reps=2)
    ditg = tablegen.ditg_table(setups=setups, reps=2)
    deployment = tablegen.deployment_table(setups=setups, workloads=["latency", *THROUGHPUT_WORKLOADS], reps=2,
                                           tunnel_implementation="userspace (wireguard-go)")
    host_usage = tablegen.host_usage_table(setups=single, workloads=THROUGHPUT_WORKLOADS, reps=2)
    frames = {"latency": latency, "throughput": throughput, "ditg": ditg, "deployment": deployment,
              "host_usage": host_usage, "security": security_table(setups),
              "policy_update": recorded_as([(setup, "kernel") for setup in single], tmp_path_factory.mktemp("policy")
                                           / "policy.parquet")}
    frames["first_packet"] = tablegen.first_packet_table(setups=single, reps=2)
    frames = {kind: with_implementation(frame, USERSPACE, "userspace") for kind, frame in frames.items()}
    frames["summary"] = tablegen.summary_table(frames["latency"], frames["throughput"], frames["ditg"],
                                               frames["first_packet"],
                                               design={"run_order": "blocked", "rounds": 6})
    return frames


def labelling_fields(spec: dict) -> set[str]:
    """The fields of the channels that put names on an axis or in a legend."""
    return {node["encoding"][channel]["field"] for node in walk(spec) if isinstance(node.get("encoding"), dict)
            for channel in LABEL_CHANNELS if isinstance(node["encoding"].get(channel), dict)
            and "field" in node["encoding"][channel]}


def test_the_label_names_what_ran_and_says_when_nothing_was_recorded():
    assert _common.implementation_label("single-ovs-none-c2", "userspace") == "single-ovs-none-c2 (userspace)"
    assert _common.implementation_label("wireguard", "userspace (wireguard-go)") == "wireguard (userspace (wireguard-go))"
    for missing in ("unknown", "", None, np.nan):
        assert _common.implementation_label("single-bridge-none-c2", missing) == \
            "single-bridge-none-c2 (implementation unknown)"
    frame = pd.DataFrame({"setup": ["a", "b"], "solution": ["ovs", "ovs"], "implementation": ["kernel", "userspace"]})
    assert list(_common.labelled(frame)["setup_label"]) == ["a (kernel)", "b (userspace)"]
    assert list(_common.labelled(frame, "solution")["solution_label"]) == ["ovs (kernel)", "ovs (userspace)"]
    assert list(_common.labelled(frame.iloc[:0]).columns) == [*frame.columns, "setup_label"]


# every setup's label in the sweep below (tablegen runs wireguard in userspace, the rest in the kernel)
SETUP_LABELS = {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)", "multi-wireguard-none-c4 (userspace)",
                "multi-vxlan-none-c4 (kernel)"}
# figure -> (the field its axis or legend draws the labels from, labels its data must carry)
EXPECTED = {
    "latency_boxplot": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "throughput_by_payload": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "ditg_bitrate": ("setup_label", SETUP_LABELS),
    "ditg_delay": ("setup_label", SETUP_LABELS),
    "first_packet": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "first_packet_flushed": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "cpu_per_gbit": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "deploy_time": ("setup_label", SETUP_LABELS),
    "baseline_ratio": ("setup_label", {f"{USERSPACE} (userspace)"}),
    "rule_scaling": ("solution_label", {"bridge (userspace)"}),
    "security_matrix": ("setup_label", SETUP_LABELS),
    "policy_latency": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "policy_established": ("setup_label", {f"{BASELINE} (kernel)", f"{USERSPACE} (userspace)"}),
    "policy_rule_scaling": ("solution_label", {"bridge (userspace)"}),
    "multi_host_throughput": ("tunnel_label", {"wireguard (userspace (wireguard-go))", "vxlan (userspace (wireguard-go))"}),
    "multi_host_latency": ("tunnel_label", {"wireguard (userspace (wireguard-go))", "vxlan (userspace (wireguard-go))"}),
    "multi_host_ditg_throughput": ("tunnel_label", {"wireguard (userspace (wireguard-go))",
                                                    "vxlan (userspace (wireguard-go))"}),
    "multi_host_setup_time": ("tunnel_label", {"wireguard (userspace (wireguard-go))", "vxlan (userspace (wireguard-go))"}),
}


def test_every_figure_is_checked():
    assert set(EXPECTED) == set(figures.FIGURES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_figure_labels_each_setup_with_its_implementation(name, sweep_tables):
    field, expected = EXPECTED[name]
    spec = build(name, sweep_tables).to_dict()
    drawn = {row[field] for dataset in spec["datasets"].values() for row in dataset if field in row}
    assert expected <= drawn and (field != "setup_label" or drawn <= SETUP_LABELS), drawn
    # the axis or legend draws the label (directly, or through the calculated 'label' that adds
    # n and the unconverged glyph to it), never the bare setup id or solution
    fields = labelling_fields(spec)
    assert field in fields or "label" in fields, fields
    assert not {"setup", "solution", "tunnel"} & fields, fields
    if "label" in fields:
        calculated = [node["calculate"] for node in walk(spec) if node.get("as") == "label"]
        assert calculated and all(f"datum.{field}" in expression for expression in calculated)


def test_the_rendered_axis_or_legend_shows_the_implementation(sweep_tables):
    # the figures that look the labels up per setup (their raw rows carry only the setup id) and
    # the three the brief names first
    for name in ("latency_boxplot", "throughput_by_payload", "ditg_delay", "first_packet", "cpu_per_gbit",
                 "baseline_ratio", "security_matrix", "deploy_time", "rule_scaling"):
        svg = vl_convert.vegalite_to_svg(build(name, sweep_tables).to_json())
        assert f"{USERSPACE} (userspace)" in svg or (name == "rule_scaling" and "bridge (userspace)" in svg), name


def test_a_tunnel_measured_in_two_implementations_gets_two_labels():
    from seconetbench.figures import multi_host

    setups = ["multi-wireguard-none-c4-ikernel", "multi-wireguard-none-c4-iuserspace"]
    deployment = pd.concat([
        tablegen.deployment_table(setups=["multi-wireguard-none-c4"], tunnel_implementation=words).assign(setup=setup)
        for setup, words in zip(setups, ["kernel", "userspace (wireguard-go)"])])
    facts = multi_host.tunnel_facts(deployment)
    labels = multi_host._labelled(facts, facts).set_index("setup")["tunnel_label"]
    assert labels.to_dict() == {setups[0]: "wireguard (kernel)", setups[1]: "wireguard (userspace (wireguard-go))"}


def test_labels_need_the_implementation_column(sweep_tables):
    summary = sweep_tables["summary"].drop(columns="implementation")
    with pytest.raises(ValueError, match=r"figure baseline_ratio: the table lacks columns \['implementation'\]"):
        figures.FIGURES["baseline_ratio"].builder(summary)
    assert "implementation" in json.dumps(tables.schema("summary").names)
