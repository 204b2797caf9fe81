"""The paper's qualitative findings, checked against the tables of a sweep.

Each :class:`Finding` is data: the paper's claim in words, where the paper makes it, which cells
(setups × measures) it needs, how its effect is computed and the rule that turns the effect's
95 % CI into a verdict: ``holds``, ``contradicted``, ``inconclusive`` (the CI reaches across a
boundary of the rule, or there are too few repetitions for a CI) or ``not measured`` (naming the
cells the sweep lacks). docs/findings.md describes every finding; :data:`FINDINGS` lists them.

Every effect is a ratio of one value per repetition (the unit of replication,
docs/statistics.md): numerator ÷ denominator, each a cell's per-repetition value or a product of
cells (the effect of a tunnel ÷ the effect of a filter). A comparison pools several such pairs
(e.g. every container count) by their geometric mean per repetition, and its CI comes from
:func:`stats.paired_ratios` when the design pairs them (one target, or one round of the
``blocked`` run order) and from :func:`stats.unpaired_ratio` otherwise.

Pure functions except :func:`build` and :func:`build_in`, which read the tables and write
findings.md and findings.html.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from seconetbench import stats, tables
from seconetbench.errors import SeconetError
from seconetbench.fsutil import write_text_atomic
from seconetbench.spec import SETUP_ID

HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "holds", "contradicted", "inconclusive", "not measured"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)

# What the paper's sweep compares: the tunnels and VPNs between hosts, and which of them are
# plain encapsulations (kernel) and which VPNs run a daemon or WireGuard.
TUNNELS = ("vxlan", "ipip", "gre", "ipsec", "wireguard", "tinc", "openvpn")
ENCAPSULATIONS = ("ipip", "gre", "vxlan", "ipsec")
SLOW_VPNS = ("wireguard", "tinc", "openvpn")
FILTERS = ("iptables", "nftables", "ebpf", "ovs")


# ------------------------------------------------------------------------------------ measures
@dataclass(frozen=True)
class Measure:
    """One value per setup and repetition, from one table kind (docs/findings.md, "What an
    effect is", says what each value is)."""

    key: str  # e.g. "rtt_ms", "throughput_mbps@653"
    unit: str  # of the value: ms, Mbit/s
    table: str  # the table kind it comes from, in words
    metric: str  # the metric column it summarises (its name carries the unit)
    workloads: tuple[str, ...] = ()  # preferred workload names when a setup has several


# a repetition's median RTT of its received probes; its median first-packet RTT and warm RTT
# (the first_packet workload's first_ms and warm_ms, or, from ping, the median over its pairs of
# the first probe's RTT and of the median RTT of the later probes)
RTT = Measure("rtt_ms", "ms", "latency", "rtt_ms", ("latency",))
FIRST_RTT = Measure("first_rtt_ms", "ms", "first_packet or latency", "rtt_ms", ("latency",))
STEADY_RTT = Measure("steady_rtt_ms", "ms", "first_packet or latency", "rtt_ms", ("latency",))


def throughput(payload_bytes: int) -> Measure:
    """A repetition's mean per-pair TCP throughput with *payload_bytes*-byte writes."""
    return Measure(f"throughput_mbps@{payload_bytes}", "Mbit/s", "throughput", "throughput_mbps")


def delay(traffic: str) -> Measure:
    """A repetition's median one-way delay of the intervals with packets of a D-ITG *traffic*."""
    return Measure(f"delay_ms@{traffic}", "ms", "ditg", "delay_ms")


def repetition_values(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One value per setup, workload, measure key and rep from the latency, first_packet,
    throughput and ditg tables (columns ``setup``, ``workload``, ``measure``, ``source``, ``rep``,
    ``value``). The values are the summary table's per-repetition values
    (convergence.REPETITION_METRICS); throughput is split by payload (TCP only), D-ITG by
    traffic, and latency also gives the first probe and the steady state of every pair
    (figures.comparison.first_packet)."""
    from seconetbench import convergence

    parts = []
    latency = frames.get("latency")
    if latency is not None and not latency.empty:
        rtt = convergence.repetition_values(latency, "latency", ["setup", "workload"])
        parts.append(rtt.assign(measure=RTT.key))
        from seconetbench.figures.comparison import first_packet

        flows = first_packet(latency)
        if not flows.empty:
            per_rep = flows.groupby(["setup", "workload", "rep"], observed=True)[["first_ms", "steady_ms"]].median()
            per_rep = per_rep.reset_index()
            parts.append(per_rep.rename(columns={"first_ms": "value"}).drop(columns="steady_ms")
                         .assign(measure=FIRST_RTT.key))
            parts.append(per_rep.rename(columns={"steady_ms": "value"}).drop(columns="first_ms")
                         .assign(measure=STEADY_RTT.key))
    controlled = frames.get("first_packet")
    if controlled is not None and not controlled.empty:
        # the first_packet workload: flow caches flushed before each first packet, then the same
        # flow warm; its values are the summary's (convergence.summary_metrics)
        measure_of = {"first_ms": FIRST_RTT, "warm_ms": STEADY_RTT}
        for select, metric, per_rep in convergence.summary_metrics("first_packet"):
            rows = stats.repetition_values(select(controlled), metric, ["setup", "workload"], per_rep)
            parts.append(rows.assign(measure=measure_of[metric].key, source="first_packet"))
    stream = frames.get("throughput")
    if stream is not None and not stream.empty:
        values = convergence.repetition_values(stream, "throughput", ["setup", "workload", "protocol", "payload_bytes"])
        values = values[values["protocol"] == "tcp"]
        parts.append(values.assign(measure="throughput_mbps@" + values["payload_bytes"].astype(str))
                     .drop(columns=["protocol", "payload_bytes"]))
    ditg = frames.get("ditg")
    if ditg is not None and not ditg.empty:
        values = convergence.repetition_values(ditg, "ditg", ["setup", "workload", "traffic"])
        parts.append(values.assign(measure="delay_ms@" + values["traffic"].astype(str)).drop(columns="traffic"))
    # source: the table kind the value comes from (a first packet from the first_packet
    # workload's table, where caches were flushed, or from a latency table's first ping)
    columns = ["setup", "workload", "measure", "source", "rep", "value"]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "value" else "object") for c in columns})
    parts = [p if "source" in p else p.assign(source="") for p in parts]
    values = pd.concat([p[columns] for p in parts], ignore_index=True)
    return values.astype({"setup": str, "workload": str, "measure": str, "source": str, "rep": int, "value": float})


# ------------------------------------------------------------------------------------ catalogue
SETUP_COLUMNS = ["setup", "scenario", "solution", "filter", "tunnel", "implementation", "containers"]


@dataclass
class Catalogue:
    """What a sweep measured: its setups (identity and the parts of their id) and one value per
    setup, measure and rep; *design* is how it was run (summary metadata: run_order, rounds)."""

    setups: pd.DataFrame  # SETUP_COLUMNS + hosts, rules, cipher, backend; one row per setup
    values: dict[tuple[str, str], dict[int, float]]  # (setup, measure key) -> value by rep
    workloads: dict[tuple[str, str], str]  # (setup, measure key) -> the workload the values are of
    design: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, frames: dict[str, pd.DataFrame], design: dict[str, Any] | None = None) -> Catalogue:
        identities = [f[SETUP_COLUMNS] for f in frames.values() if f is not None and not f.empty
                      and set(SETUP_COLUMNS) <= set(f.columns)]
        setups = (pd.concat(identities, ignore_index=True).drop_duplicates("setup") if identities
                  else pd.DataFrame(columns=SETUP_COLUMNS))
        parts = setups["setup"].astype(str).map(lambda s: SETUP_ID.match(s))
        for column in ("hosts", "rules", "cipher", "backend"):
            setups[column] = [m[column] if m else None for m in parts]
        setups = setups.astype({"setup": str, "containers": int}).set_index("setup", drop=False)
        long = repetition_values(frames).dropna(subset=["value"])
        # per cell one workload: the first_packet workload's for the first packet (caches
        # flushed), else a named one (the workload "latency" for rtt_ms), else the most repetitions
        preferred = {m.key: m.workloads for m in (RTT, FIRST_RTT, STEADY_RTT)}
        counts = long.groupby(["setup", "measure", "source", "workload"], sort=False).size().rename("reps").reset_index()
        counts["controlled"] = counts["source"] == "first_packet"
        counts["preference"] = [preferred.get(m, ()).index(w) if w in preferred.get(m, ()) else len(preferred.get(m, ()))
                                for m, w in zip(counts["measure"], counts["workload"])]
        counts = counts.sort_values(["setup", "measure", "controlled", "preference", "reps", "workload"],
                                    ascending=[True, True, False, True, False, True])
        chosen = counts.drop_duplicates(["setup", "measure"])
        workloads = {(s, m): w for s, m, w in zip(chosen["setup"], chosen["measure"], chosen["workload"])}
        values: dict[tuple[str, str], dict[int, float]] = {}
        for setup, measure, workload, rep, value in long[["setup", "measure", "workload", "rep", "value"]].itertuples(
                index=False):
            if workloads[(setup, measure)] == workload:
                values.setdefault((setup, measure), {})[int(rep)] = float(value)
        return cls(setups, values, workloads, dict(design or {}))

    @property
    def paired_rounds(self) -> int | None:
        """The rounds of a blocked run order (reps 1..rounds pair across setups), else None."""
        if self.design.get("run_order") != "blocked":
            return None
        return int(self.design.get("rounds") or 0) or None

    def plain(self) -> pd.DataFrame:
        """Setups without extra rules: the paper measured its filters with the whitelist only."""
        return self.setups[self.setups["rules"].isna()]


# ------------------------------------------------------------------------------ comparisons
Cell = tuple[str, str]  # (setup, measure key)
Term = tuple[tuple[Cell, int], ...]  # product of cells' values to the given powers (+1 or -1)


@dataclass(frozen=True)
class Pair:
    numerator: Term
    denominator: Term  # () = 1: the numerator's value itself (an absolute effect)


@dataclass
class Comparison:
    """Pairs pooled into one effect, e.g. 'vxlan (kernel)': every container count's tunnel
    effect. *covers* names what the comparison is about (for the claim's expected coverage)."""

    label: str
    pairs: list[Pair]
    covers: frozenset[str] = frozenset()
    unit: str = ""  # "" for a ratio, else the unit of an absolute value
    value_unit: str = ""  # the unit of the cells' values (their medians are shown beside a ratio)


@dataclass(frozen=True)
class Where:
    """A selection of setups: each column's allowed values (*only*) and excluded values (*but*)."""

    only: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    but: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def __call__(self, setups: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=setups.index)
        for column, allowed in self.only:
            keep &= setups[column].isin(allowed)
        for column, excluded in self.but:
            keep &= ~setups[column].isin(excluded)
        return setups[keep]

    def text(self) -> str:
        words = [f"{c} {'/'.join(map(str, v))}" for c, v in self.only]
        words += [f"{c} not {'/'.join(map(str, v))}" for c, v in self.but]
        return ", ".join(words) or "every setup"


def where(**only: Any) -> Where:
    """``where(scenario="single", but_filter=("none",))``: keyword = allowed values, ``but_<column>``
    = excluded values."""
    keep = tuple((k, v if isinstance(v, tuple) else (v,)) for k, v in only.items() if not k.startswith("but_"))
    but = tuple((k[4:], v if isinstance(v, tuple) else (v,)) for k, v in only.items() if k.startswith("but_"))
    return Where(keep, but)


def _scenario(select: Where) -> str:
    return dict(select.only).get("scenario", ("<scenario>",))[0]


def _key(row: pd.Series | dict, columns: Sequence[str]) -> tuple[str, ...]:
    return tuple("" if pd.isna(row[c]) else str(row[c]) for c in columns)


# Setups compared with each other must run on the same hosts and backend.
_ALWAYS_MATCH = ("scenario", "hosts", "backend")


def _label(row: pd.Series | dict, group: Sequence[str]) -> str:
    words = []
    for column in group:
        value = row[column]
        words.append(f"({value})" if column == "implementation" else str(value))
    return " ".join(words) or "all"


def _has(catalogue: Catalogue, setup: str, measure: str) -> bool:
    return (setup, measure) in catalogue.values


def _needs(setup: str, measure: Measure) -> str:
    return f"{setup} × {measure.key}"


@dataclass(frozen=True)
class AgainstBaseline:
    """Each selected setup against its baseline (stats.baseline_of): the same setup without its
    filter (*effect_of* filter) or the same hosts without the tunnel (tunnel)."""

    measure: Measure
    select: Where
    effect_of: str  # "filter" or "tunnel"
    group: tuple[str, ...] = ()

    def text(self) -> str:
        base = "the same setup with filter none" if self.effect_of == "filter" else \
            "the same hosts with tunnel routing (no tunnel)"
        return f"{self.measure.key} of each setup ({self.select.text()}) ÷ {base}"

    def needs(self) -> str:
        return f"{self.measure.table} table: setups with {self.select.text()} and their baselines"

    def pattern(self, item: str | None = None) -> str:
        m, scenario = self.measure.key, _scenario(self.select)
        if self.effect_of == "filter":
            middle = "<solution>" if scenario == "single" else "<tunnel>"
            return f"{scenario}-{middle}-{item or '<filter>'}-c<N> × {m} and {scenario}-{middle}-none-c<N> × {m}"
        return f"multi-{item or '<tunnel>'}-none-c<N> × {m} and multi-routing-none-c<N> × {m}"

    def __call__(self, catalogue: Catalogue) -> tuple[list[Comparison], list[str]]:
        comparisons: dict[str, Comparison] = {}
        missing = []
        for _, row in self.select(catalogue.plain()).iterrows():
            effect, baseline = stats.baseline_of(row["setup"])
            if effect != self.effect_of:
                continue
            if not _has(catalogue, row["setup"], self.measure.key):
                missing.append(_needs(row["setup"], self.measure))
                continue
            if not _has(catalogue, baseline, self.measure.key):
                missing.append(f"{_needs(baseline, self.measure)} (baseline of {row['setup']})")
                continue
            label = _label(row, self.group)
            comparison = comparisons.setdefault(label, Comparison(label, [], frozenset(
                str(row[c]) for c in self.group), value_unit=self.measure.unit))
            comparison.pairs.append(Pair((((row["setup"], self.measure.key), 1),),
                                         (((baseline, self.measure.key), 1),)))
        return list(comparisons.values()), missing


@dataclass(frozen=True)
class BetweenSetups:
    """Selected setups (*numerator*) against others (*denominator*) with the same *match*
    columns, per measure; comparisons grouped by *group* on both sides."""

    measures: tuple[Measure, ...]
    numerator: Where
    denominator: Where
    match: tuple[str, ...]
    group: tuple[str, ...] = ()

    def text(self) -> str:
        keys = "/".join(m.key for m in self.measures)
        return (f"{keys} of setups with {self.numerator.text()} ÷ that of setups with {self.denominator.text()}, "
                f"matched on {', '.join(self.match)}")

    def needs(self) -> str:
        tables_ = sorted({m.table for m in self.measures})
        return (f"{'/'.join(tables_)} table ({', '.join(m.key for m in self.measures)}): setups with "
                f"{self.numerator.text()}, and setups with {self.denominator.text()} of the same {', '.join(self.match)}")

    def pattern(self, item: str | None = None) -> str:
        measures = "/".join(m.key for m in self.measures)
        if item:  # what the claim covers here is a tunnel
            return f"multi-{item}-none-c<N> × {measures}"
        scenario = _scenario(self.numerator)
        middle = "<solution>" if scenario == "single" else "<tunnel>"
        return f"{scenario}-{middle}-<filter>-c<N> × {measures} with {self.numerator.text()}, and with {self.denominator.text()}"

    def __call__(self, catalogue: Catalogue) -> tuple[list[Comparison], list[str]]:
        plain = catalogue.plain()
        keys = [*_ALWAYS_MATCH, *self.match]
        mine = self.numerator(plain).to_dict("records")
        theirs: dict[tuple[str, ...], list[dict]] = {}
        for other in self.denominator(plain).to_dict("records"):
            theirs.setdefault(_key(other, keys), []).append(other)
        comparisons: dict[str, Comparison] = {}
        missing = []
        for measure in self.measures:
            for row in mine:
                if not _has(catalogue, row["setup"], measure.key):
                    missing.append(_needs(row["setup"], measure))
                    continue
                partners = [other for other in theirs.get(_key(row, keys), [])
                            if other["setup"] != row["setup"] and _has(catalogue, other["setup"], measure.key)]
                if not partners:
                    missing.append(f"{measure.key} of a setup with {self.denominator.text()} and "
                                   + ", ".join(f"{k} {row[k]}" for k in self.match) + f" (partner of {row['setup']})")
                for other in partners:
                    label = f"{_label(row, self.group)} ÷ {_label(other, self.group)}" if self.group else "all"
                    if len(self.measures) > 1:
                        label += f" at {measure.key}"
                    covers = frozenset(str(v) for v in [*(row[c] for c in self.group), *(other[c] for c in self.group)])
                    comparison = comparisons.setdefault(label, Comparison(label, [], covers, value_unit=measure.unit))
                    comparison.pairs.append(Pair((((row["setup"], measure.key), 1),),
                                                 (((other["setup"], measure.key), 1),)))
        return list(comparisons.values()), missing


@dataclass(frozen=True)
class BetweenMeasures:
    """Within each selected setup, one measure against another (*steps*: numerator, denominator),
    e.g. throughput at 653 B ÷ at 64 B; with a denominator of None, the value itself (its unit)."""

    steps: tuple[tuple[Measure, Measure | None], ...]
    select: Where
    group: tuple[str, ...] = ()

    def text(self) -> str:
        return "; ".join(f"{a.key} ÷ {b.key}" if b else f"{a.key} ({a.unit})" for a, b in self.steps) + \
            f" within each setup ({self.select.text()})"

    def needs(self) -> str:
        measures = sorted({m.key for step in self.steps for m in step if m})
        return f"{'/'.join(sorted({m.table for step in self.steps for m in step if m}))} table " \
               f"({', '.join(measures)}) of setups with {self.select.text()}"

    def pattern(self, item: str | None = None) -> str:
        scenario = _scenario(self.select)
        measures = sorted({m.key for step in self.steps for m in step if m})
        middle = "<solution>" if scenario == "single" else "<tunnel>"
        return f"{scenario}-{middle}-<filter>-c<N> × {' and × '.join(measures)} ({self.select.text()})"

    def __call__(self, catalogue: Catalogue) -> tuple[list[Comparison], list[str]]:
        comparisons: dict[str, Comparison] = {}
        missing = []
        for numerator, denominator in self.steps:
            for _, row in self.select(catalogue.plain()).iterrows():
                absent = [m for m in (numerator, denominator) if m and not _has(catalogue, row["setup"], m.key)]
                if absent:
                    missing += [_needs(row["setup"], m) for m in absent]
                    continue
                step = f"{numerator.key} ÷ {denominator.key}" if denominator else numerator.key
                label = f"{_label(row, self.group)}: {step}" if self.group else step
                comparison = comparisons.setdefault(label, Comparison(
                    label, [], frozenset(str(row[c]) for c in self.group), "" if denominator else numerator.unit,
                    numerator.unit))
                comparison.pairs.append(Pair((((row["setup"], numerator.key), 1),),
                                             (((row["setup"], denominator.key), 1),) if denominator else ()))
        return list(comparisons.values()), missing


@dataclass(frozen=True)
class TunnelAgainstFilter:
    """Per multi-host setup with a filter and a tunnel: the tunnel's cost ÷ the filter's cost,
    each a factor ≥ 1 when it costs (latency: setup ÷ baseline; throughput: baseline ÷ setup,
    stats.WORSE_WHEN). Tunnel cost: T without filter vs routing without filter; filter cost: T
    with the filter vs T without it. Above 1: the tunnel costs more than the filter."""

    measures: tuple[Measure, ...]

    def text(self) -> str:
        return ("per round, (tunnel setup ÷ routing) ÷ (filtered ÷ unfiltered tunnel setup), each factor oriented "
                f"so that a cost is above 1 ({'/'.join(m.key for m in self.measures)})")

    def needs(self) -> str:
        return ("multi-host setups with a tunnel and a filter (sweep.multi.filters beyond none), the same "
                "tunnel without the filter, and routing without the filter")

    def pattern(self, item: str | None = None) -> str:
        m = "/".join(m.key for m in self.measures)
        return (f"multi-<tunnel>-<filter>-c<N>, multi-<tunnel>-none-c<N> and multi-routing-none-c<N> × {m} "
                "(filter iptables/nftables, tunnel not routing)")

    def __call__(self, catalogue: Catalogue) -> tuple[list[Comparison], list[str]]:
        comparisons: dict[str, Comparison] = {}
        missing = []
        filtered = where(scenario="multi", but_filter=("none",), but_tunnel=("routing",))(catalogue.plain())
        for measure in self.measures:
            sign = -1 if stats.WORSE_WHEN.get(measure.metric) == "lower" else 1
            for setup in filtered["setup"]:
                _, unfiltered = stats.baseline_of(setup)
                _, routing = stats.baseline_of(unfiltered)
                absent = [s for s in (setup, unfiltered, routing) if not _has(catalogue, s, measure.key)]
                if absent:
                    missing += [_needs(s, measure) for s in absent]
                    continue
                key = measure.key
                tunnel_cost = (((unfiltered, key), sign), ((routing, key), -sign))
                filter_cost = (((setup, key), sign), ((unfiltered, key), -sign))
                label = measure.key
                comparisons.setdefault(label, Comparison(label, [], frozenset([measure.key]))).pairs.append(
                    Pair(tunnel_cost, filter_cost))
        return list(comparisons.values()), missing


# ------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class Rule:
    """The claim holds when the effect's 95 % CI lies inside (low, high) (None: unbounded), is
    contradicted when the CI lies wholly outside [low, high], and is inconclusive when the CI
    reaches across low or high (or there is no CI)."""

    low: float | None = None
    high: float | None = None

    def verdict(self, ci_low: float, ci_high: float) -> str:
        if math.isnan(ci_low) or math.isnan(ci_high):
            return INCONCLUSIVE
        inside = (self.low is None or ci_low > self.low) and (self.high is None or ci_high < self.high)
        if inside:
            return HOLDS
        outside = (self.low is not None and ci_high < self.low) or (self.high is not None and ci_low > self.high)
        return CONTRADICTED if outside else INCONCLUSIVE

    def text(self, unit: str = "") -> str:
        def show(x: float) -> str:
            return f"{x:.3g} {unit}".strip()

        if self.low is not None and self.high is not None:
            return (f"holds when the 95 % CI lies within ({show(self.low)}, {show(self.high)}); contradicted when it "
                    f"lies wholly below {show(self.low)} or above {show(self.high)}")
        if self.low is not None:
            return f"holds when the 95 % CI lies above {show(self.low)}; contradicted when it lies wholly below"
        return f"holds when the 95 % CI lies below {show(self.high)}; contradicted when it lies wholly above"


def above(x: float) -> Rule:
    return Rule(low=x)


def below(x: float) -> Rule:
    return Rule(high=x)


def within(low: float, high: float) -> Rule:
    return Rule(low=low, high=high)


# ------------------------------------------------------------------------------------ findings
@dataclass(frozen=True)
class Finding:
    """One qualitative finding of the paper and how this project checks it."""

    id: str
    claim: str  # the paper's claim, in words
    section: str  # where the paper makes it (its section and figure, as docs/figures.md maps them)
    comparisons: AgainstBaseline | BetweenSetups | BetweenMeasures | TunnelAgainstFilter
    rule: Rule
    # "pooled": one comparison (every pair pooled); "each": a verdict per comparison, combined
    # (contradicted if any is, holds if all do)
    quantifier: str = "pooled"
    expected: tuple[str, ...] = ()  # what the claim covers (e.g. tunnels): named when unmeasured
    note: str = ""  # how this project reads the claim, where it needs reading

    @property
    def needs(self) -> str:
        return self.comparisons.needs()

    @property
    def effect(self) -> str:
        return self.comparisons.text()


def _single(measure: Measure, **select: Any) -> AgainstBaseline:
    return AgainstBaseline(measure, where(scenario="single", but_filter=("none",), **select), "filter", ("filter",))


def _tunnels(measure: Measure, tunnels: Sequence[str]) -> AgainstBaseline:
    return AgainstBaseline(measure, where(scenario="multi", filter="none", tunnel=tuple(tunnels)), "tunnel",
                           ("tunnel", "implementation"))


_T64, _T653, _T1370 = throughput(64), throughput(653), throughput(1370)
_OTHER_TUNNELS = where(scenario="multi", filter="none", but_tunnel=("routing", "wireguard"))
_WIREGUARD = where(scenario="multi", filter="none", tunnel="wireguard")
_SINGLE_HOST = "Single host"
_MULTI_HOST = "Multi host"

FINDINGS: tuple[Finding, ...] = (
    Finding("filters-latency-single", "Packet filters barely change the ping latency between containers.",
            f"{_SINGLE_HOST}, latency basic (Fig. 4)", _single(RTT), within(1 / 1.1, 1.1), "each", FILTERS,
            "'Barely' read as within ±10 % of the unfiltered setup, per filter (pooled over solutions and "
            "container counts)."),
    Finding("filters-latency-multi", "Packet filters barely change the ping latency between hosts either.",
            f"{_MULTI_HOST}, latency (Fig. 7)",
            AgainstBaseline(RTT, where(scenario="multi", but_filter=("none",)), "filter", ("filter",)),
            within(1 / 1.1, 1.1), "each", ("iptables", "nftables"),
            "Within ±10 % of the same tunnel without the filter, per filter (pooled over tunnels and container counts)."),
    Finding("throughput-grows-with-payload-single", "Throughput grows with the payload size (64 → 653 → 1370 B).",
            f"{_SINGLE_HOST}, throughput basic (Fig. 4)",
            BetweenMeasures(((_T653, _T64), (_T1370, _T653)), where(scenario="single")), above(1.0), "each"),
    Finding("throughput-grows-with-payload-multi",
            "Across hosts too, throughput grows with the payload size, whatever the tunnel.",
            f"{_MULTI_HOST}, throughput (Fig. 7)",
            BetweenMeasures(((_T653, _T64), (_T1370, _T653)), where(scenario="multi")), above(1.0), "each"),
    Finding("bpf-below-iptables-653",
            "At 653-byte payloads the BPF filter's throughput is about 100 Mbit/s below iptables'.",
            f"{_SINGLE_HOST}, throughput basic (Fig. 4)",
            BetweenSetups((_T653,), where(scenario="single", filter="ebpf"), where(scenario="single", filter="iptables"),
                          ("solution", "containers")), below(1.0), "pooled",
            note="Checked as the ratio ebpf ÷ iptables below 1 (same solution and container count); the "
                 "difference in Mbit/s is shown beside it, as the 100 Mbit/s is the paper's machine's."),
    Finding("ovs-first-packet-slower",
            "With OVS the first packet of a flow is much slower than the rest (flow set-up in ovs-vswitchd).",
            f"{_SINGLE_HOST}, latency basic (Fig. 4)",
            BetweenMeasures(((FIRST_RTT, STEADY_RTT),), where(scenario="single", solution="ovs")), above(1.0),
            note="First probe of each pair ÷ the median of its later probes, within the same target (paired). "
                 "A first_packet workload, where the sweep has one, is preferred to the latency workload's pings."),
    Finding("ovs-first-packet-up-to-30ms", "With OVS the first packet takes up to 30 ms.",
            f"{_SINGLE_HOST}, latency basic (Fig. 4)",
            BetweenMeasures(((FIRST_RTT, None),), where(scenario="single", solution="ovs")), below(30.0),
            note="'Up to' read as an upper bound: the median first-probe RTT's CI below 30 ms."),
    Finding("bursty-filters-raise-delay", "Under bursty traffic, packet filters raise the one-way delay.",
            f"{_SINGLE_HOST}, bursty traffic (Fig. 5)", _single(delay("bursty")), above(1.0), "each", FILTERS),
    Finding("tunnels-add-latency", "Every tunnel and VPN adds latency against plain routing between the hosts.",
            f"{_MULTI_HOST}, latency (Fig. 7)", _tunnels(RTT, TUNNELS), above(1.0), "each", TUNNELS),
    Finding("encapsulations-add-20pct",
            "IPIP, GRE, VXLAN and IPsec add about 20 % to the latency.",
            f"{_MULTI_HOST}, latency (Fig. 7)", _tunnels(RTT, ENCAPSULATIONS), within(1.05, 1.5), "each",
            ENCAPSULATIONS, "'About +20 %' read as a ratio between 1.05 and 1.5 (a cost well short of 2×)."),
    Finding("vpns-double-latency", "WireGuard, Tinc and OpenVPN about double the latency.",
            f"{_MULTI_HOST}, latency (Fig. 7)", _tunnels(RTT, SLOW_VPNS), within(1.5, 3.0), "each", SLOW_VPNS,
            "'About 2×' read as a ratio between 1.5 and 3."),
    Finding("vpns-slower-than-encapsulations",
            "WireGuard, Tinc and OpenVPN cost clearly more latency than IPIP, GRE, VXLAN and IPsec.",
            f"{_MULTI_HOST}, latency (Fig. 7)",
            BetweenSetups((RTT,), where(scenario="multi", filter="none", tunnel=SLOW_VPNS),
                          where(scenario="multi", filter="none", tunnel=ENCAPSULATIONS), ("containers",)),
            above(1.0), note="The contrast of the two findings above, pooled over every pair of them."),
    Finding("wireguard-fastest-64", "WireGuard has the highest throughput of the tunnels at 64-byte payloads.",
            f"{_MULTI_HOST}, throughput (Fig. 7)",
            BetweenSetups((_T64,), _WIREGUARD, _OTHER_TUNNELS, ("containers",), ("tunnel", "implementation")),
            above(1.0), "each", TUNNELS),
    Finding("wireguard-fastest-653", "WireGuard has the highest throughput of the tunnels at 653-byte payloads.",
            f"{_MULTI_HOST}, throughput (Fig. 7)",
            BetweenSetups((_T653,), _WIREGUARD, _OTHER_TUNNELS, ("containers",), ("tunnel", "implementation")),
            above(1.0), "each", TUNNELS),
    Finding("tinc-openvpn-slowest", "Tinc and OpenVPN have the lowest throughput of the tunnels.",
            f"{_MULTI_HOST}, throughput (Fig. 7)",
            BetweenSetups((_T64, _T653, _T1370), where(scenario="multi", filter="none", tunnel=("tinc", "openvpn")),
                          where(scenario="multi", filter="none", tunnel=("vxlan", "ipip", "gre", "ipsec", "wireguard")),
                          ("containers",), ("tunnel", "implementation")),
            below(1.0), "each", TUNNELS, "Each of tinc and openvpn against each other tunnel, at every payload."),
    Finding("filters-negligible-next-to-tunnels-latency",
            "The latency a filter adds is negligible next to what a tunnel adds.",
            f"{_MULTI_HOST}, latency (Fig. 7)", TunnelAgainstFilter((RTT,)), above(1.0),
            note="Read as: the tunnel's cost factor is larger than the filter's (ratio of the two above 1)."),
    Finding("filters-negligible-next-to-tunnels-throughput",
            "The throughput a filter costs is negligible next to what a tunnel costs.",
            f"{_MULTI_HOST}, throughput (Fig. 7)", TunnelAgainstFilter((_T64, _T653, _T1370)), above(1.0), "each",
            note="Per payload: the tunnel's cost factor (routing ÷ tunnel) ÷ the filter's (unfiltered ÷ filtered)."),
)


# ------------------------------------------------------------------------------------ effects
def _term_values(term: Term, catalogue: Catalogue) -> dict[int, float]:
    """A term's value per rep: the product of its cells' values to their powers, over the reps
    all its cells have (an empty term is 1)."""
    cells = [(catalogue.values[cell], power) for cell, power in term]
    reps = set.intersection(*(set(values) for values, _ in cells)) if cells else set()
    return {rep: math.prod(values[rep] ** power for values, power in cells) for rep in sorted(reps)}


def _same_target(pair: Pair, catalogue: Catalogue) -> bool:
    cells = [cell for cell, _ in (*pair.numerator, *pair.denominator)]
    return len({(setup, catalogue.workloads[(setup, m)]) for setup, m in cells}) == 1


def _geometric_mean_by_rep(values: list[dict[int, float]]) -> pd.Series:
    """Per rep, the geometric mean of the positive values the dicts hold for it."""
    logs: dict[int, list[float]] = {}
    for by_rep in values:
        for rep, value in by_rep.items():
            if value > 0:
                logs.setdefault(rep, []).append(math.log(value))
    return pd.Series({rep: math.exp(sum(v) / len(v)) for rep, v in sorted(logs.items())}, dtype=float)


@dataclass
class ComparisonResult:
    label: str
    pairs: int
    pairing: str  # "paired (one target)", "paired per round", "unpaired"
    ratio: float
    ci_low: float
    ci_high: float
    n: int  # rounds (paired) or the smaller number of repetitions (unpaired)
    verdict: str
    unit: str = ""  # "" for a ratio
    numerator_median: float = math.nan  # of the pooled numerator (single-cell terms only)
    denominator_median: float = math.nan
    value_unit: str = ""  # unit of the two medians


def comparison_effect(comparison: Comparison, catalogue: Catalogue, rule: Rule, ci_level: float = 0.95) -> ComparisonResult:
    """The pooled effect of *comparison*: per pair the numerator's and denominator's values per
    rep, pooled over the pairs by their geometric mean per rep, then stats.paired_ratios
    (one target, or one round of a blocked run order: reps 1..rounds) or stats.unpaired_ratio."""
    rounds = catalogue.paired_rounds
    same_target = all(_same_target(p, catalogue) for p in comparison.pairs)
    pairing = "paired (one target)" if same_target else "paired per round" if rounds else "unpaired"
    numerators, denominators = [], []
    for pair in comparison.pairs:
        numerator = _term_values(pair.numerator, catalogue)
        denominator = _term_values(pair.denominator, catalogue) if pair.denominator else dict.fromkeys(numerator, 1.0)
        if pairing != "unpaired":
            common = [r for r in numerator if r in denominator and (pairing != "paired per round" or r <= rounds)]
            numerator, denominator = {r: numerator[r] for r in common}, {r: denominator[r] for r in common}
        numerators.append(numerator)
        denominators.append(denominator)
    top, bottom = _geometric_mean_by_rep(numerators), _geometric_mean_by_rep(denominators)
    effect = (stats.unpaired_ratio if pairing == "unpaired" else stats.paired_ratios)(top, bottom, ci_level=ci_level)
    # the two sides' own medians (e.g. 812 vs 905 Mbit/s) where each side is one cell
    single_cells = all(len(p.numerator) == 1 and len(p.denominator) == 1 for p in comparison.pairs)
    value_unit = comparison.value_unit if single_cells else ""
    return ComparisonResult(
        label=comparison.label, pairs=len(comparison.pairs), pairing=pairing, ratio=effect["ratio"],
        ci_low=effect["ci_low"], ci_high=effect["ci_high"], n=int(effect["n"]),
        verdict=rule.verdict(effect["ci_low"], effect["ci_high"]), unit=comparison.unit,
        numerator_median=float(top.median()) if single_cells and len(top) else math.nan,
        denominator_median=float(bottom.median()) if single_cells and len(bottom) else math.nan,
        value_unit=value_unit)


@dataclass
class FindingResult:
    finding: Finding
    verdict: str
    comparisons: list[ComparisonResult]
    not_measured: list[str]  # cells (or what the claim covers) the sweep lacks
    reason: str  # why the verdict, in words


def check_finding(finding: Finding, catalogue: Catalogue) -> FindingResult:
    comparisons, missing = finding.comparisons(catalogue)
    if finding.quantifier == "pooled" and len(comparisons) > 1:
        merged = Comparison("all", [p for c in comparisons for p in c.pairs],
                            frozenset().union(*(c.covers for c in comparisons)), comparisons[0].unit,
                            comparisons[0].value_unit)
        comparisons = [merged]
    results = [comparison_effect(c, catalogue, finding.rule) for c in comparisons]
    covered = frozenset().union(*(c.covers for c in comparisons)) if comparisons else frozenset()
    uncovered = [f"{e}: {finding.comparisons.pattern(e)}" for e in finding.expected if e not in covered]
    not_measured = sorted(set(missing)) + uncovered
    if not results:
        return FindingResult(finding, NOT_MEASURED, [], not_measured or [finding.comparisons.pattern()],
                             "the sweep has none of the pairs of cells it compares")
    verdicts = [r.verdict for r in results]
    if CONTRADICTED in verdicts:
        verdict = CONTRADICTED
        reason = "contradicted by " + ", ".join(r.label for r in results if r.verdict == CONTRADICTED)
    elif all(v == HOLDS for v in verdicts):
        verdict, reason = HOLDS, f"{len(results)} of {len(results)} comparisons hold"
    else:
        verdict = INCONCLUSIVE
        open_ = [r for r in results if r.verdict == INCONCLUSIVE]
        no_ci = [r for r in open_ if math.isnan(r.ci_low)]
        reason = (f"{len(open_)} of {len(results)} comparisons have a CI reaching across the rule's boundary"
                  if not no_ci else f"{len(no_ci)} of {len(results)} comparisons have too few "
                  f"{'rounds' if no_ci[0].pairing.startswith('paired') else 'repetitions'} for a CI "
                  f"(n = {min(r.n for r in no_ci)}; a paired CI needs 6, an unpaired one 7 per side)")
    if uncovered and verdict == HOLDS:
        reason += "; only for what was measured"
    return FindingResult(finding, verdict, results, not_measured, reason)


def check(frames: dict[str, pd.DataFrame], design: dict[str, Any] | None = None,
          findings: Iterable[Finding] = FINDINGS) -> list[FindingResult]:
    """Every finding's verdict on the tables *frames* (kind -> table: latency, throughput,
    ditg) of a sweep run with *design* (``{"run_order": ..., "rounds": ...}``)."""
    catalogue = Catalogue.of(frames, design)
    return [check_finding(f, catalogue) for f in findings]


# ------------------------------------------------------------------------------------ reports
def _number(x: float) -> str:
    if math.isnan(x):
        return "–"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"


def effect_text(r: ComparisonResult) -> str:
    """'×1.03 [0.98, 1.07]' for a ratio, '12.3 ms [10.1, 14.0]' for a value."""
    ci = f"[{_number(r.ci_low)}, {_number(r.ci_high)}]" if not math.isnan(r.ci_low) else "(no CI)"
    if r.unit:
        return f"{_number(r.ratio)} {r.unit} {ci}"
    return f"×{_number(r.ratio)} {ci}"


def _medians_text(r: ComparisonResult) -> str:
    if r.unit or math.isnan(r.numerator_median) or math.isnan(r.denominator_median):
        return ""
    difference = r.numerator_median - r.denominator_median
    return (f"{_number(r.numerator_median)} vs {_number(r.denominator_median)} {r.value_unit} "
            f"({'+' if difference >= 0 else '−'}{_number(abs(difference))} {r.value_unit})")


def headline(result: FindingResult) -> str:
    """The measured effect of a finding in one cell of the overview table."""
    if not result.comparisons:
        return "–"
    if len(result.comparisons) == 1:
        return effect_text(result.comparisons[0])
    ratios = [r.ratio for r in result.comparisons if not math.isnan(r.ratio)]
    unit = result.comparisons[0].unit
    if not ratios:
        return f"{len(result.comparisons)} comparisons, no effect"
    span = f"{_number(min(ratios))}–{_number(max(ratios))}"
    return f"{len(result.comparisons)} comparisons: {span} {unit}".strip() if unit else \
        f"{len(result.comparisons)} comparisons: ×{span}"


def _pairing(result: FindingResult) -> str:
    return ", ".join(sorted({r.pairing for r in result.comparisons})) or "–"


def _design_text(design: dict[str, Any]) -> str:
    order, rounds = design.get("run_order"), design.get("rounds")
    if order == "blocked":
        return f"run order blocked, {rounds} rounds: effects between setups are paired per round (reps 1..{rounds})"
    if order:
        return f"run order {order}: effects between setups are unpaired (ratio of medians)"
    return "run order not recorded: effects between setups are unpaired (ratio of medians)"


INTRO = ("Each finding of the paper, its measured effect with a 95 % CI (over one value per repetition, "
         "docs/statistics.md) and a verdict: **holds**, **contradicted**, **inconclusive** (the CI reaches "
         "across the rule's boundary, or too few repetitions for a CI) or **not measured** (the cells it "
         "needs are missing). docs/findings.md describes every finding and its rule.")


def _counts(results: list[FindingResult]) -> str:
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    return ", ".join(f"{v}: {counts[v]}" for v in VERDICTS)


def _details(result: FindingResult) -> list[str]:
    """What the finding computes, its rule, what it needs and how its words are read."""
    f = result.finding
    unit = result.comparisons[0].unit if result.comparisons else ""
    each = f.quantifier == "each"
    lines = [f"effect: {f.effect} ({'per comparison' if each else 'pooled'})",
             f"rule: {f.rule.text(unit)}" + ("; every comparison must hold, one contradicted contradicts" if each else ""),
             f"needs: {f.needs}"]
    return lines + ([f"reading: {f.note}"] if f.note else [])


def _source_text(design: dict[str, Any], source: str) -> str:
    return f"Tables: {source}; {_design_text(design)}." if source else f"{_design_text(design).capitalize()}."


def markdown(results: list[FindingResult], design: dict[str, Any], source: str = "") -> str:
    lines = ["# The paper's findings, checked", "", INTRO, "", _source_text(design, source), ""]
    lines += [f"Verdicts: {_counts(results)}.", "",
              "| finding | the paper's claim | section | measured effect [95 % CI] | pairing | verdict |",
              "|---|---|---|---|---|---|"]
    for r in results:
        cells = [f"[{r.finding.id}](#{r.finding.id})", r.finding.claim, r.finding.section, headline(r), _pairing(r),
                 f"**{r.verdict}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for r in results:
        f = r.finding
        lines += ["", f"## {f.id}", "", f"**Claim.** {f.claim} ({f.section})", "",
                  f"**Verdict: {r.verdict}**: {r.reason}.", "", *(f"- {line}" for line in _details(r))]
        if r.comparisons:
            lines += ["", "| comparison | pairs | effect [95 % CI] | medians | n | pairing | verdict |",
                      "|---|---|---|---|---|---|---|"]
            for c in r.comparisons:
                lines.append(f"| {c.label} | {c.pairs} | {effect_text(c)} | {_medians_text(c) or '–'} | {c.n} | "
                             f"{c.pairing} | {c.verdict} |")
        if r.not_measured:
            lines += ["", "Not measured: " + "; ".join(r.not_measured[:40])
                      + (f"; … ({len(r.not_measured) - 40} more)" if len(r.not_measured) > 40 else "")]
    return "\n".join(lines) + "\n"


_COLOURS = {HOLDS: "#1a7f37", CONTRADICTED: "#cf222e", INCONCLUSIVE: "#9a6700", NOT_MEASURED: "#6e7781"}


def html_report(results: list[FindingResult], design: dict[str, Any], source: str = "") -> str:
    e = html.escape

    def badge(verdict: str) -> str:
        return f'<span class="verdict" style="background:{_COLOURS[verdict]}">{e(verdict)}</span>'

    rows = "".join(
        f"<tr><td><a href='#{e(r.finding.id)}'>{e(r.finding.id)}</a></td><td>{e(r.finding.claim)}</td>"
        f"<td>{e(r.finding.section)}</td><td>{e(headline(r))}</td><td>{e(_pairing(r))}</td>"
        f"<td>{badge(r.verdict)}</td></tr>" for r in results)
    sections = []
    for r in results:
        f = r.finding
        detail = "".join(f"<li>{e(line)}</li>" for line in _details(r))
        table = ""
        if r.comparisons:
            table = ("<table><tr><th>comparison</th><th>pairs</th><th>effect [95 % CI]</th><th>medians</th><th>n</th>"
                     "<th>pairing</th><th>verdict</th></tr>" + "".join(
                         f"<tr><td>{e(c.label)}</td><td>{c.pairs}</td><td>{e(effect_text(c))}</td>"
                         f"<td>{e(_medians_text(c) or '–')}</td><td>{c.n}</td><td>{e(c.pairing)}</td>"
                         f"<td>{badge(c.verdict)}</td></tr>" for c in r.comparisons) + "</table>")
        missing = (f"<p class='missing'>Not measured: {e('; '.join(r.not_measured[:40]))}</p>"
                   if r.not_measured else "")
        sections.append(f"<section id='{e(f.id)}'><h2>{e(f.id)} {badge(r.verdict)}</h2>"
                        f"<p><b>Claim.</b> {e(f.claim)} ({e(f.section)})</p><p><b>Verdict:</b> {e(r.reason)}.</p>"
                        f"<ul>{detail}</ul>{table}{missing}</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>The paper's findings, checked</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
td, th {{ border: 1px solid #d0d7de; padding: 3px 6px; vertical-align: top; text-align: left; }}
.verdict {{ color: white; border-radius: 4px; padding: 1px 6px; white-space: nowrap; }}
.missing {{ color: #6e7781; }}
</style></head><body>
<h1>The paper's findings, checked</h1>
<p>{e(INTRO.replace('**', ''))}</p>
<p>{e(_source_text(design, source))}</p>
<p>Verdicts: {e(_counts(results))}.</p>
<table><tr><th>finding</th><th>the paper's claim</th><th>section</th><th>measured effect [95 % CI]</th>
<th>pairing</th><th>verdict</th></tr>{rows}</table>
{''.join(sections)}
</body></html>
"""


MEASUREMENT_KINDS = ("latency", "first_packet", "throughput", "ditg")


def build_in(results_dir: str | Path, out_dir: str | Path | None = None) -> list[FindingResult]:
    """:func:`build` on the tables of a results directory (or of its tables/ directory itself),
    writing findings.md and findings.html into *out_dir* (default: the results directory)."""
    tables_dir = Path(results_dir)
    if (tables_dir / "tables").is_dir():
        tables_dir = tables_dir / "tables"
    files = [tables_dir / f"{kind}.parquet" for kind in (*MEASUREMENT_KINDS, "summary")]
    present = [path for path in files if path.exists()]
    if not present:
        raise SeconetError(f"{results_dir}: no tables to check the findings on; expected "
                           f"{', '.join(p.name for p in files)} under {tables_dir}")
    out = Path(out_dir) if out_dir else tables_dir.parent if tables_dir.name == "tables" else tables_dir
    out.mkdir(parents=True, exist_ok=True)
    return build(present, out / "findings.md", out / "findings.html")


def overview(results: list[FindingResult]) -> str:
    """One line per finding (verdict, id, effect) and the counts: what the command prints."""
    width = max(len(r.finding.id) for r in results)
    lines = [f"{r.verdict:<13} {r.finding.id:<{width}}  {headline(r)}" for r in results]
    return "\n".join([*lines, f"verdicts: {_counts(results)}"])


def build(table_files: Iterable[str | Path], md_out: str | Path, html_out: str | Path) -> list[FindingResult]:
    """Read a sweep's tables (the latency, throughput and ditg tables among *table_files*, and
    the design from summary.parquet's metadata) and write findings.md and findings.html."""
    frames: dict[str, pd.DataFrame] = {}
    design: dict[str, Any] = {}
    paths = [Path(p) for p in table_files]
    for path in paths:
        kind = tables.kind_of(path)
        if kind in MEASUREMENT_KINDS:
            frames[kind] = tables.read(path)
        elif kind == "summary":
            design = tables.read_table_meta(path).get("design") or {}
    results = check(frames, design)
    source = str(paths[0].parent) if paths else ""
    write_text_atomic(md_out, markdown(results, design, source))
    write_text_atomic(html_out, html_report(results, design, source))
    return results
