"""`antal hub ...` and `antal node join`: the federated network's command line.

    antal hub serve --store hub.sqlite                  # the hub's HTTP API
    antal hub nodes add uppsala --store hub.sqlite      # prints the node's token (once)
    antal hub count t2d.cohort --hub URL --token T --project nat   # live per-node table
    antal hub status [QUERY] --store hub.sqlite
    antal node join URL --token T --project nat=t2d --data data    # a node's agent

Exit codes follow antal's (antal.api.cli.common); `hub count` exits 0 when every node
answered, refused or failed and some node's answer is in the total, 5 when the answer is
partial (some node missing: the total is a lower bound), 6 when no node answered (every
node refused, failed or timed out: there is no total), 2 when the hub cannot be reached
(after retrying for `--retry` seconds; a query it accepted is named, to ask for later).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from antal.api.cli.common import (
    TlsCertOpt,
    TlsKeyOpt,
    err,
    fail,
    failing,
    out,
    read_cohort,
    run_server,
)
from antal.api.cli.common import settings as node_settings

__all__ = ["hub_app", "node_app"]

PARTIAL_EXIT = 5
NO_ANSWER_EXIT = 6

hub_app = typer.Typer(help="The hub of a federated network of antal nodes.", no_args_is_help=True)
nodes_app = typer.Typer(help="The hub's nodes.", no_args_is_help=True)
hub_app.add_typer(nodes_app, name="nodes")
node_app = typer.Typer(help="This installation as a node of a hub.", no_args_is_help=True)

HubStoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="The hub's store: SQLite path or postgresql:// URL "
                 "(default: ANTAL_HUB_STORE, else hub.sqlite in the user data directory)."),
]  # fmt: skip
HubUrlOpt = Annotated[
    str | None, typer.Option("--hub", help="The hub's URL (default: ANTAL_HUB_URL).")
]
CaCertOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="ANTAL_CA_CERT",
        help="A certificate authority (PEM) to trust for an https hub, besides the system's: "
        "an internal CA, or the hub's self-signed certificate (default: ANTAL_CA_CERT).",
    ),
]
TokenOpt = Annotated[
    str | None, typer.Option(help="Your bearer token on the hub (default: ANTAL_TOKEN).")
]


def _ago(t: float | None) -> str:
    return "never" if t is None else f"{time.time() - t:.0f} s ago"


def _hub_store(store: str | None) -> Any:
    from antal.api.federation.settings import load_hub_settings
    from antal.api.federation.store import HubStore

    with failing():
        return HubStore(load_hub_settings(None, store=store).store)


# ---- the hub ------------------------------------------------------------------------------------


@hub_app.command("serve")
def serve(
    config: Annotated[Path | None, typer.Option(help="Hub settings (YAML).")] = None,
    store: HubStoreOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8100).")] = None,
    deadline: Annotated[
        float | None, typer.Option(help="Default seconds a query waits for its nodes.")
    ] = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Run the hub's HTTP API: researchers submit, nodes pull work and answer."""
    from antal.api.federation.hub import create_hub_app
    from antal.api.federation.settings import load_hub_settings
    from antal.api.tls import server_tls

    with failing(prefix="cannot start: "):
        s = load_hub_settings(config, store=store, host=host, port=port, deadline_seconds=deadline,
                              tls_cert=tls_cert, tls_key=tls_key)  # fmt: skip
        tls = server_tls(s.tls_cert, s.tls_key)
        application = create_hub_app(s)
    scheme = "https" if tls else "http"
    err.print(
        f"antal hub on {scheme}://{s.host}:{s.port} (store {s.store}; OpenAPI: /openapi.json)"
    )
    # long-polls hold requests open: a stop does not wait for them (their state is stored)
    run_server(application, s.host, s.port, s.forwarded_allow_ips, timeout_graceful_shutdown=2,
               **tls)  # fmt: skip


@nodes_app.command("add")
def nodes_add(
    name: Annotated[str, typer.Argument(help="The node's name (e.g. a region: uppsala).")],
    store: HubStoreOpt = None,
    persons: Annotated[
        int | None,
        typer.Option(
            help="The most persons the node's extract holds (its population): no count it sends "
            "may exceed it (default: Sweden's population)."
        ),
    ] = None,
    holds: Annotated[
        str | None,
        typer.Option(help="The registers it holds, comma-separated (default: its first report)."),
    ] = None,
) -> None:
    """Register a node; prints its token (shown once; only its hash is kept)."""
    hub = _hub_store(store)
    try:
        token = hub.add_node(name, persons)
        if holds is not None:
            hub.set_holds(name, [r.strip() for r in holds.split(",") if r.strip()])
    except ValueError as e:
        fail(str(e))
    out.print(token, soft_wrap=True)


@nodes_app.command("holds")
def nodes_holds(
    name: Annotated[str, typer.Argument(help="The node.")],
    registers: Annotated[list[str], typer.Argument(help="The registers it holds.")],
    store: HubStoreOpt = None,
) -> None:
    """Say which registers a node holds (audited): what the hub's linkage check uses. A node
    cannot change it by what it reports."""
    hub = _hub_store(store)
    try:
        hub.set_holds(name, registers)
    except ValueError as e:
        fail(str(e))
    out.print(f"{name} holds {', '.join(sorted(registers))}")


@nodes_app.command("list")
def nodes_list(store: HubStoreOpt = None) -> None:
    """The hub's nodes, the registers the hub takes each to hold, what it reported where that
    differs, whether it is reachable (heard from within the hub's heartbeat window) and when
    it was last seen, and its answers refused as invalid."""
    from antal.api.federation.results import unreachable
    from antal.api.federation.settings import load_hub_settings

    beat = load_hub_settings(None, store=store).heartbeat_seconds
    hub = _hub_store(store)
    t = Table("node", "holds", "reported", "status", "last seen", "invalid answers")
    for n in hub.nodes():
        gone = unreachable(n.last_seen, beat, time.time())
        t.add_row(n.name, "(not yet said)" if n.holds is None else ", ".join(n.holds),
                  "" if n.reported is None else ", ".join(n.reported) or "(nothing)",
                  Text("unreachable", style="red") if gone else "reachable", _ago(n.last_seen),
                  str(n.invalid_answers))  # fmt: skip
    out.print(t)


_STATUS_STYLE = {"succeeded": "green", "refused": "yellow", "failed": "red",
                 "timed_out": "red", "unreachable": "red", "running": "cyan",
                 "offered": "dim", "pending": "dim"}  # fmt: skip


def render(view: dict[str, Any]) -> Group:
    """A query's per-node table and its combined total, for people."""
    t = Table("node", "status", "count", "95% interval", "note",
              title=f"{view['title']} — query {view['id']}")  # fmt: skip
    for n in view["nodes"]:
        note = ""
        if n.get("error"):
            note = f"{n['error']['code']}: {n['error']['message']}"
        elif n.get("in_total") is False:
            note = "answered; not in the total (see below)"
        elif n["status"] == "unreachable":
            note = f"not heard from since {n.get('last_seen') or 'ever'}"
        iv = n.get("interval")
        count = n.get("count")
        t.add_row(
            n["node"], Text(n["status"], style=_STATUS_STYLE.get(n["status"], "")),
            "" if count is None else str(count), f"{iv[0]}–{iv[1]}" if iv else "", note,
        )  # fmt: skip
    lines = [t]
    total = view.get("total")
    if total is None:
        lines.append(Text(view.get("total_note") or "no node has answered yet"))
    else:
        lo, hi = (f"{x:,}".replace(",", " ") for x in total["interval"])
        head = "at least " if total["lower_bound"] else ""
        kind = (
            " (an interval: some node's count is below its threshold)"
            if total["total"] is None
            else ""
        )
        lines.append(Text(
            f"total over {len(total['over_nodes'])} node(s): {head}{total['display']}{kind}; "
            f"95% interval {lo}–{hi}", style="bold",
        ))  # fmt: skip
    if view["missing"] and total is not None:
        lines.append(Text(f"missing: {', '.join(view['missing'])} (the total is a lower bound)"))
    elif view["missing"] and not view.get("total_note"):
        lines.append(Text(f"waiting for: {', '.join(view['missing'])}"))
    if total is not None and view.get("total_note"):
        lines.append(Text(view["total_note"], style="dim"))
    if not view["per_node_counts"] and view.get("per_node_note"):
        lines.append(Text(view["per_node_note"], style="dim"))
    return Group(*lines)


@hub_app.command("status")
def status(
    query: Annotated[
        str | None, typer.Argument(help="A query id (default: the latest ones).")
    ] = None,
    store: HubStoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The hub's queries and their per-node status (read from the hub's store)."""
    from antal.api.federation.results import query_view
    from antal.api.federation.settings import load_hub_settings

    s = load_hub_settings(None, store=store)
    hub = _hub_store(store)
    live = {"seen": {n.name: n.last_seen for n in hub.nodes()}, "heartbeat": s.heartbeat_seconds}
    if query is None:
        rows = []
        for q in hub.queries()[:20]:
            found = hub.query(q.id)
            assert found is not None
            rows.append(query_view(*found, min_nodes_shown=s.min_nodes_shown, **live))
        if as_json:
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            return
        # folded, never cut with an ellipsis: a narrow terminal (or none) must still show
        # every node that answered or is missing
        t = Table()
        for head in ("query", "title", "project", "created", "complete", "answered", "missing"):
            t.add_column(head, overflow="fold")
        for v in rows:
            t.add_row(v["id"], v["title"], v["project"], v["created"], "yes" if v["complete"] else "no",
                      ", ".join(v["answered"]), ", ".join(v["missing"]))  # fmt: skip
        out.print(t)
        return
    found = hub.query(query)
    if found is None:
        fail(f"no query {query!r} in this hub")
    view = query_view(*found, min_nodes_shown=s.min_nodes_shown, **live)
    if as_json:
        sys.stdout.write(json.dumps(view, ensure_ascii=False) + "\n")
        return
    out.print(render(view))


@hub_app.command("count")
def count(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    project: Annotated[str, typer.Option(help="The hub project to ask under.")],
    hub: HubUrlOpt = None,
    token: TokenOpt = None,
    nodes: Annotated[
        list[str] | None, typer.Option("--node", help="Ask only these nodes (repeatable).")
    ] = None,
    deadline: Annotated[
        float | None, typer.Option(help="Seconds the query waits for its nodes.")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to watch the answers come in (at most until the deadline)."),
    ] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final JSON.")] = False,
    retry: Annotated[
        float,
        typer.Option(help="Seconds to keep retrying a hub that cannot be reached (a restart)."),
    ] = 120.0,
    ca_cert: CaCertOpt = None,
) -> None:
    """Submit a cohort to every node of the hub and watch them answer (a live table). The
    query's id is printed (stderr) as soon as the hub accepts it; a hub that restarts while
    this waits is retried, and the same query's answer shown."""
    from antal.api.client import Client, ClientError, CohortInvalidError, ConnectionFailedError

    text = read_cohort(file)
    url = hub or os.environ.get("ANTAL_HUB_URL")
    if not url:
        fail("say which hub: --hub URL or ANTAL_HUB_URL")

    def say(message: str) -> None:
        err.print(message, markup=False, soft_wrap=True)

    qid: str | None = None
    try:
        with Client(url, token, timeout=120, ca_cert=ca_cert) as c:
            end = time.monotonic() + wait
            res = c.hub_submit(project, text, nodes=nodes, deadline_seconds=deadline, wait=0,
                               retry_seconds=retry, say=say)  # fmt: skip
            qid = res.id
            say(f"query {qid} submitted")

            def waiting() -> bool:  # until complete, the query's deadline, or our wait
                return not (res.complete or res.raw["past_deadline"]) and time.monotonic() < end

            def again(most: float) -> Any:
                return c.hub_result(res.id, wait=min(most, max(0.0, end - time.monotonic())),
                                    retry_seconds=retry, say=say)  # fmt: skip

            if as_json:
                while waiting():
                    res = again(10.0)
            else:
                with Live(render(res.raw), console=out, refresh_per_second=4) as live:
                    while waiting():
                        res = again(1.0)
                        live.update(render(res.raw))
    except CohortInvalidError as e:
        err.print(str(e), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except ConnectionFailedError as e:
        kept = f" (query {qid} is kept: `antal hub status {qid}`)" if qid and not e.query_id else ""
        fail(f"{e.message}{kept}")
    except ClientError as e:
        fail(f"{e.code}: {e.message}")
    except ValueError as e:
        fail(str(e))
    if as_json:
        sys.stdout.write(json.dumps(res.raw, ensure_ascii=False) + "\n")
    if not res.raw["answered"] and (res.complete or res.raw["past_deadline"]):
        fail(res.total_note or "no node answered", code=NO_ANSWER_EXIT)
    if not res.complete:
        raise typer.Exit(PARTIAL_EXIT)


# ---- a node ---------------------------------------------------------------------------------------


@node_app.command("join")
def join(
    hub_url: Annotated[str, typer.Argument(help="The hub's URL (https in deployment).")],
    token: Annotated[
        str | None,
        typer.Option(help="This node's token (antal hub nodes add; default: ANTAL_NODE_TOKEN)."),
    ] = None,
    project: Annotated[
        list[str] | None,
        typer.Option(
            "--project",
            help="HUB_PROJECT=LOCAL_PROJECT (repeatable; a bare LOCAL "
            "answers every hub project under it).",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Directory of canonical Parquet extracts.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Installation config (YAML).")] = None,
    store: Annotated[str | None, typer.Option(help="This installation's store.")] = None,
    poll: Annotated[float | None, typer.Option(help="Seconds of one long-poll for work.")] = None,
    ca_cert: CaCertOpt = None,
) -> None:
    """Answer the hub's queries from this installation (outbound connections only)."""
    from antal.api.federation.node import NodeAgent, NodeRejected, parse_project_map
    from antal.engine.limits import HUB_NODE_POLL_SECONDS

    token = token or os.environ.get("ANTAL_NODE_TOKEN")
    if not token:
        fail(
            "give this node's token: --token T or ANTAL_NODE_TOKEN (antal hub nodes add prints one)"
        )
    try:
        projects = parse_project_map(project or [])
    except ValueError as e:
        fail(str(e))
    s = node_settings(data, config, store=store)
    with failing(prefix="cannot join: "):
        agent = NodeAgent(hub_url, token, s, projects, poll_seconds=poll or HUB_NODE_POLL_SECONDS,
                          ca_cert=ca_cert,
                          say=lambda m: err.print(f"node: {m}", markup=False, soft_wrap=True))  # fmt: skip
    err.print(f"node: release {agent.installation.release} answering {hub_url} "
              f"({', '.join(f'{k}→{v}' for k, v in projects.items())})", markup=False)  # fmt: skip
    stop = threading.Event()
    try:
        agent.run(stop)
    except NodeRejected as e:
        fail(str(e))
    except KeyboardInterrupt:  # pragma: no cover - interactive
        stop.set()
    finally:
        agent.close()
