"""Find, plan and apply across layers. Applying keeps an undo list and replays it on failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from threading import Event
from typing import Any, Callable, Optional, Protocol

from unban.address import Network, parse_network, show
from unban.errors import ApplyError
from unban.layers import Layer
from unban.model import Batch, Finding, LayerStatus, Plan, Report
from unban.path.evaluate import Reach, summary
from unban.path.model import Packet
from unban.settings import Settings
from unban.signals import DeferredSignals
from unban.system import concurrently, shared_reads


def default_layers(
    settings: Settings,
    *,
    sshd_config: Optional[str] = None,
    keep_sshd_exempt: bool = False,
    without_sshd: bool = False,
    take_handles: bool = False,
) -> list[Layer]:
    """Every layer, in the order their changes are applied, with this run's fail2ban config
    dir and state dir (`settings`) and sshd's config (`sshd_config`: sshd's default;
    `keep_sshd_exempt`: heal keeps protected addresses in PerSourcePenaltyExemptList).
    `without_sshd`: all but the sshd penalty layer, whose module (and what it imports) is
    then not loaded at all (`unban me --no-sshd`, heal without the sshd group).
    `take_handles`: the iptables layer's finds also take the nft rule handles, for a delete of
    what they read (XtablesLayer).

    fail2ban comes first: its unban removes its own rules, set elements and routes, which the
    packet-filter layers then must not delete again (see `left_to_fail2ban`).
    """
    from unban.layers.fail2ban import Fail2banLayer
    from unban.layers.hosts import HostsLayer
    from unban.layers.ipset import IpsetLayer
    from unban.layers.nftables import NftablesLayer
    from unban.layers.recent import RecentLayer
    from unban.layers.routes import RoutesLayer
    from unban.layers.xtables import XtablesLayer
    from unban.owners import default_owners

    xtables = XtablesLayer(take_handles=take_handles)
    layers: list[Layer] = [
        Fail2banLayer(settings.fail2ban_conf, settings.state_dir),
        xtables,
        NftablesLayer(),
        IpsetLayer(xtables),
        RecentLayer(xtables),
        RoutesLayer(),
        *default_owners(settings.state_dir),
        HostsLayer(state_dir=settings.state_dir),
    ]
    if not without_sshd:
        from unban.layers.sshd_penalty import SshdPenaltyLayer

        layers.append(
            SshdPenaltyLayer(sshd_config, settings.state_dir, keep_exempt=keep_sshd_exempt)
        )
    return layers


def find(
    target: Network,
    layers: Sequence[Layer],
    *,
    packets: Optional[Sequence[Packet]] = None,
    sshd_config: Optional[str] = None,
) -> Report:
    """Everything that blocks `target`. A layer that is not present (its tool not installed) is
    reported in the statuses, not fatal; an error reading a present one is raised.

    For one address, the path evaluator then judges what a new SYN to sshd meets (each of
    `packets`; by default one per address and port sshd listens on) through the rules the
    packet-filter layers just read: their findings are marked on or off that path, and each
    stop no layer names becomes a finding of its own (unban.verdict). sshd listens where
    `sshd -T` says, with `-f sshd_config` when given (the config the running sshd reads).
    """
    return judged(target, layers, packets, sshd_config=sshd_config)[0]


def judged(
    target: Network,
    layers: Sequence[Layer],
    packets: Optional[Sequence[Packet]] = None,
    *,
    sshd_config: Optional[str] = None,
) -> tuple[Report, list[Reach]]:
    """`find`, and the evaluator's whole answer for each packet (doctor shows every way)."""
    with shared_reads():
        return _judged(target, layers, packets, sshd_config)


def _judged(
    target: Network,
    layers: Sequence[Layer],
    packets: Optional[Sequence[Packet]],
    sshd_config: Optional[str],
) -> tuple[Report, list[Reach]]:
    """The layers read at once, each in its own thread, beside `sshd -T` and the route the
    evaluator's packets need; a layer that reads through another (ipset and xt_recent read the
    rules the iptables layer read) starts when that one is done."""
    from unban import verdict

    single = target.num_addresses == 1
    done: dict[int, Event] = {id(layer): Event() for layer in layers}

    def read(layer: Layer) -> tuple[Sequence[LayerStatus], Sequence[Finding]]:
        try:
            before = getattr(layer, "reads_after", None)
            if before is not None and id(before) in done:
                done[id(before)].wait()
            return layer.status(), layer.find(target)
        finally:
            done[id(layer)].set()

    def packets_now() -> Optional[Sequence[Packet]]:
        if packets is not None or not single:
            return packets
        return list(verdict.system_packets(target.network_address, sshd_config))

    jobs: list[Callable[[], Any]] = [packets_now, *(partial(read, layer) for layer in layers)]
    first, *reads = concurrently(jobs)
    findings: list[Finding] = []
    statuses: list[LayerStatus] = []
    for status, found in reads:
        statuses.extend(status)
        findings.extend(found)
    sources = [layer for layer in layers if isinstance(layer, verdict.PathSource)]
    if not sources or not single:
        return Report(show(target), tuple(findings), tuple(statuses)), []
    from unban.path.lookups import SystemLookups

    packets = first
    assert packets is not None
    lookups = SystemLookups()
    reaches = verdict.judge(packets, sources, lookups)
    met = verdict.judge(packets, sources, lookups, see_through=True)
    merged = verdict.merge(findings, reaches, target, met)
    summaries = tuple(summary(r) for r in reaches)
    return Report(show(target), tuple(merged), tuple(statuses), summaries), reaches


def plan(
    report: Report, layers: Sequence[Layer], *, broad: bool = False, on_path_only: bool = False
) -> Plan:
    """The plan that removes every targeted finding (broad ones too with `broad`). Pure.

    `on_path_only` (what `unban me` asks): leave alone the findings a new SYN to sshd never
    meets (a DROP in FORWARD, a chain nothing jumps to); they are listed in `plan.aside`.
    """
    findings = list(report.findings)
    aside: tuple[Finding, ...] = ()
    if on_path_only:
        aside = tuple(f for f in findings if f.on_path is False)
        findings = [f for f in findings if f.on_path is not False]
    chosen = [f for f in findings if f.targeted or broad]
    skipped = tuple(f for f in findings if not (f.targeted or broad))
    ours = [f for f in chosen if not left_to_fail2ban(f, chosen) and not left_to_owner(f, chosen)]
    batches: list[Batch] = []
    for layer in layers:
        batches.extend(layer.plan([f for f in ours if f.layer == layer.name]))
    # A layer may decline a finding (firewalld's table belongs to firewall-cmd): say so.
    planned = {step.finding for batch in batches for step in batch.steps}
    declined = tuple(f for f in ours if f not in planned)
    return Plan(report.target, tuple(batches), skipped + declined, aside)


def left_to_fail2ban(finding: Finding, chosen: Sequence[Finding]) -> bool:
    """True when the running fail2ban's unban of a chosen ban removes `finding` itself.

    fail2ban's unban in jail J runs J's actions' unban: that deletes its rule in chain f2b-J,
    its element of set f2b-J / addr-set-J, its xt_recent entry (all owned "fail2ban:J"), and
    for the route and hostsdeny actions the route or hosts.deny line of that very address
    (`Finding.clears`). Deleting those as well would make fail2ban's own unban, or the undo of
    this plan, fail. Only a running server does this; unbanning in its database does not.
    The hostsdeny action's unban deletes only its own `ALL: ADDR` line (owner "fail2ban"), not
    a hand-made `sshd: ADDR` entry for the same address.
    """
    if finding.layer == "fail2ban":
        return False
    network = parse_network(finding.network)
    for ban in chosen:
        if ban.layer != "fail2ban" or ban.backend != "server":
            continue
        if network is None or network != parse_network(ban.network):
            continue  # fail2ban removes only the entry of the address it banned
        if finding.owner == ban.owner:
            return True
        if finding.layer in ban.clears and (
            finding.layer != "hosts" or finding.owner.startswith("fail2ban")
        ):
            return True
    return False


def left_to_owner(finding: Finding, chosen: Sequence[Finding]) -> bool:
    """True when a chosen finding of a live manager or daemon (`lifts_own`: ufw, firewalld,
    CrowdSec, ...) removes `finding`, its own kernel entry for the same network, itself."""
    network = parse_network(finding.network)
    return any(
        owner.lifts_own
        and owner.layer != finding.layer
        and owner.owner == finding.owner
        and network is not None
        and network == parse_network(owner.network)
        for owner in chosen
    )


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    applied: tuple[Batch, ...]


class Journal(Protocol):
    """Where a run writes down each batch before it is applied and after (unban.journal)."""

    def intent(self, batch: Batch) -> None: ...

    def applied(self, batch: Batch) -> None: ...

    def put_back(self, cause: Exception) -> ApplyError: ...


def apply(
    plan: Plan,
    layers: Sequence[Layer],
    *,
    on_batch: Callable[[Batch], None] = lambda batch: None,
    journal: Optional[Journal] = None,
) -> Outcome:
    """Apply every batch; on a failure or a signal, revert the applied ones newest-first.

    With a `journal`, each batch is written down (durably) before it is applied and marked
    after; on a failure the journal puts everything back (`Journal.put_back`), the way a later
    `unban undo` would, so a kill at any point leaves nothing it could not undo.
    """
    by_name = {layer.name: layer for layer in layers}
    applied: list[Batch] = []
    with DeferredSignals() as signals:
        try:
            for batch in plan.batches:
                signals.check()
                if journal is not None:
                    journal.intent(batch)
                by_name[batch.layer].apply(batch)
                applied.append(batch)
                if journal is not None:
                    journal.applied(batch)
                on_batch(batch)
            signals.check()
        except Exception as exc:  # noqa: BLE001 - any failure, even a bug, must roll back
            if journal is not None:
                raise journal.put_back(exc) from exc
            raise _rolled_back(exc, applied, by_name) from exc
    return Outcome(plan, tuple(applied))


def _rolled_back(cause: Exception, applied: list[Batch], by_name: dict[str, Layer]) -> ApplyError:
    failed_reverts = []
    for batch in reversed(applied):
        try:
            by_name[batch.layer].revert(batch)
        except Exception as exc:  # noqa: BLE001 - keep reverting the rest
            failed_reverts.append(f"{batch.layer} {batch.scope}: {exc}")
    if failed_reverts:
        return ApplyError(
            f"{cause}; putting back the earlier changes failed too: {'; '.join(failed_reverts)}. "
            "Compare with `unban list` and restore by hand with the undo commands above",
            rollback_failed=True,
        )
    undone = f"; the {len(applied)} batch(es) already applied were put back" if applied else ""
    return ApplyError(f"{cause}{undone}; nothing is changed", rollback_failed=False)
