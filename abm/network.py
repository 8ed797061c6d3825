"""The lending network: a typed ``networkx.MultiDiGraph`` over all agents.

Edges: ``loan`` (lender -> borrower, one per loan, key ``loan<row>``, attribute ``loan_kind``),
``funding`` (funder -> lender, interbank loans), ``lease`` (tenant -> host). Nodes are agent rows
(``agent_id`` attribute = Mesa unique_id); the export relabels them by agent id.
"""

from __future__ import annotations

import os

import networkx as nx
import numpy as np

from abm.agents.base import STATUS_NAMES, TYPE_NAMES
from abm.finance.instruments import INTERBANK, LOAN_KIND_NAMES, LOAN_STATUS_NAMES


def build_graph(m) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(range(m.n))
    loans = m.loans
    if _CLEAR_CACHE is None:  # older networkx: one add_edge per loan
        for row in range(loans.n):
            _add_loan(
                g, int(loans.lender[row]), int(loans.borrower[row]), row, int(loans.kind[row])
            )
    else:
        _write_loan_edges(g, loans.lender, loans.borrower, np.arange(loans.n), loans.kind)
        _CLEAR_CACHE(g)
    ls = m.leases
    m.lease_hosts, m.lease_tenants = {}, {}
    for row in range(ls.n):
        m.lease_hosts[row] = int(ls.host[row])
        m.lease_tenants[row] = int(ls.tenant[row])
        g.add_edge(int(ls.tenant[row]), int(ls.host[row]), key=f"lease{row}", edge_type="lease")
    return g


def _add_loan(g, lender: int, borrower: int, row: int, kind: int) -> None:
    edge_type = "funding" if kind == INTERBANK else "loan"
    g.add_edge(
        lender, borrower, key=f"loan{row}", edge_type=edge_type, loan_kind=LOAN_KIND_NAMES[kind]
    )


def move_loan_edge(m, row: int, old_lender: int) -> None:
    """A sold loan (abm/finance/loan_sales.py): its edge leaves ``old_lender`` for the loan's
    current lender (``m.loans.lender[row]``), which is connected to the borrower in the Mesa space."""
    borrower = int(m.loans.borrower[row])
    key = f"loan{row}"
    if m.graph.has_edge(old_lender, borrower, key):
        m.graph.remove_edge(old_lender, borrower, key)
    add_loan_edge(m, int(m.loans.lender[row]), borrower, row)


def add_loan_edge(m, lender: int, borrower: int, row: int) -> None:
    """Register a new loan in the graph and connect the two cells of the Mesa network space."""
    new_pair = not m.graph.has_edge(lender, borrower)
    _add_loan(m.graph, lender, borrower, row, int(m.loans.kind[row]))
    if new_pair:
        m.grid._cells[lender].connect(m.grid._cells[borrower], borrower)


# networkx >= 3.3 caches per graph and ``add_edge`` clears the cache; the direct writes below do the
# same once per batch. Without it (older networkx, or a graph subclass) edges go through add_edge.
_CLEAR_CACHE = getattr(nx, "_clear_cache", None)


def _add_loan_edges_slow(m, lenders, borrowers, rows) -> None:
    for lender, borrower, row in zip(
        np.asarray(lenders).tolist(),
        np.asarray(borrowers).tolist(),
        np.asarray(rows).tolist(),
        strict=True,
    ):
        add_loan_edge(m, lender, borrower, row)


def add_loan_edges(m, lenders, borrowers, rows) -> None:
    """:func:`add_loan_edge` for each (lender, borrower, loan row), in order (arrays). The same graph
    and cell connections; Python ints throughout (no per-edge NumPy scalar conversions).

    The edges are written straight into the graph's adjacency dicts (:func:`_write_loan_edges`),
    with networkx's cache clearing done once at the end instead of per edge."""
    g, cells = m.graph, m.grid._cells
    if _CLEAR_CACHE is None or type(g) is not nx.MultiDiGraph:
        _add_loan_edges_slow(m, lenders, borrowers, rows)
        return
    new_pairs = _write_loan_edges(g, lenders, borrowers, rows, m.loans.kind[rows])
    _CLEAR_CACHE(g)
    for lender, borrower in new_pairs:
        cells[lender].connect(cells[borrower], borrower)


def _write_loan_edges(g: nx.MultiDiGraph, lenders, borrowers, rows, kinds) -> dict:
    """Write one loan edge per (lender, borrower, loan row, loan kind) into ``g``'s adjacency dicts,
    as ``MultiDiGraph.add_edge`` does for an explicit key (same key dicts, attribute dicts and
    insertion order; new nodes through ``add_edge`` itself). The caller clears networkx's cache.
    Returns the (lender, borrower) pairs that had no edge before, in order of first appearance."""
    succ, pred = g._succ, g._pred
    key_dict, attr_dict = g.edge_key_dict_factory, g.edge_attr_dict_factory
    # a new key's attribute dict built in one go (same items, same order as attr_dict() + update)
    plain = attr_dict is dict
    new_pairs = {}
    for lender, borrower, row, kind in zip(
        np.asarray(lenders).tolist(),
        np.asarray(borrowers).tolist(),
        np.asarray(rows).tolist(),
        np.asarray(kinds).tolist(),
        strict=True,
    ):
        if lender not in succ or borrower not in succ:  # a new node: the general path
            if not g.has_edge(lender, borrower):
                new_pairs[lender, borrower] = True
            _add_loan(g, lender, borrower, row, kind)
            continue
        key = f"loan{row}"
        keydict = succ[lender].get(borrower)
        if keydict is None:  # the pair's first edge
            new_pairs[lender, borrower] = True  # a dict keeps the order of first appearance
            keydict = key_dict()
            succ[lender][borrower] = keydict
            pred[borrower][lender] = keydict
        edge_type = "funding" if kind == INTERBANK else "loan"
        datadict = keydict.get(key)
        if datadict is None and plain:
            keydict[key] = {"edge_type": edge_type, "loan_kind": LOAN_KIND_NAMES[kind]}
            continue
        if datadict is None:
            datadict = attr_dict()
        datadict.update(edge_type=edge_type, loan_kind=LOAN_KIND_NAMES[kind])
        keydict[key] = datadict
    return new_pairs


def refresh_graph(m) -> nx.MultiDiGraph:
    """Copy current balances onto the graph's node and edge attributes."""
    g = m.graph
    sheets = m.balance_sheets()
    units = m.gpu_units_by_agent()
    for i in range(m.n):
        g.nodes[i].update(
            agent_id=int(m.agent_ids[i]),
            agent_type=TYPE_NAMES[m.type[i]],
            status=STATUS_NAMES[m.status[i]],
            cash_usd=float(m.acct.cash[i]),
            gpu_units=int(units[i]),
            assets_usd=float(sheets["assets"][i]),
            debt_usd=float(sheets["debt"][i]),
            equity_usd=float(sheets["equity"][i]),
            # lenders: equity / assets at the start, the base of their capital thresholds
            capital_ratio_start=float(m.capital_ratio_start[i]),
        )
    loans = m.loans
    rates = m.loans.rates(m.base_rate)
    for row in range(loans.n):
        lender, borrower = int(loans.lender[row]), int(loans.borrower[row])
        key = f"loan{row}"
        if not g.has_edge(lender, borrower, key):
            _add_loan(g, lender, borrower, row, int(loans.kind[row]))
        g.edges[lender, borrower, key].update(
            principal_usd=float(loans.principal_usd[row]),
            status=LOAN_STATUS_NAMES[loans.status[row]],
            rate=float(rates[row]),
            maturity_month=int(loans.maturity_month[row]),
        )
    ls = m.leases
    for row in range(ls.n):
        tenant = m.lease_tenants.setdefault(
            row, int(ls.tenant[row])
        )  # original parties keep the edge
        host = m.lease_hosts.setdefault(row, int(ls.host[row]))
        key = f"lease{row}"
        if host < 0 or tenant < 0:
            continue
        if not g.has_edge(tenant, host, key):
            g.add_edge(tenant, host, key=key, edge_type="lease")
        g.edges[tenant, host, key].update(
            mw=float(ls.mw[row]),
            active=bool(ls.active[row] and ls.host[row] >= 0),
            rate_usd_per_kw_month=float(ls.rate_usd_per_kw_month[row]),
        )
    return g


def export_graph(m) -> nx.MultiDiGraph:
    """The network relabelled by agent id, with only GraphML-safe attributes.

    The graph ``nx.relabel_nodes(m.graph, mapping, copy=True)`` makes (same nodes, node
    attributes, edges, keys and adjacency order), except that each pair's key dict (key ->
    attribute dict) and the edges' attribute dicts are shared with ``m.graph`` instead of
    copied: at 1.18 M edges (``huge_network``) the copies and relabel's temporary edge lists cost
    about a gigabyte at the run's peak. The model's graph is not changed after the run; calling
    this again refreshes both graphs' attributes. Change a copy of the exported graph, not the
    graph itself: an edge added to or removed from a pair that already has edges, or an
    attribute changed, also changes ``m.graph``."""
    g = refresh_graph(m)
    mapping = {i: int(m.agent_ids[i]) for i in range(m.n)}
    if type(g) is not nx.MultiDiGraph or _CLEAR_CACHE is None:
        out = nx.relabel_nodes(g, mapping, copy=True)
    else:
        out = _relabelled_sharing_edge_data(g, mapping)
    out.graph["month"] = int(m.month)
    out.graph["date"] = m.date
    return out


def _relabelled_sharing_edge_data(g: nx.MultiDiGraph, mapping: dict) -> nx.MultiDiGraph:
    """``nx.relabel_nodes(g, mapping, copy=True)`` for an injective ``mapping``, written into the
    new graph's dicts in the order relabel's ``add_nodes_from`` / ``add_edges_from`` produce,
    with each pair's key dict and each edge's attribute dict shared, not copied
    (:func:`export_graph`)."""
    out = nx.MultiDiGraph()
    succ, pred, node = out._succ, out._pred, out._node
    for n, data in g._node.items():
        new = mapping.get(n, n)
        succ[new], pred[new], node[new] = {}, {}, data.copy()
    for u, neighbours in g._succ.items():
        new_u = mapping.get(u, u)
        out_u = succ[new_u]
        for v, keydict in neighbours.items():
            new_v = mapping.get(v, v)
            out_u[new_v] = pred[new_v][new_u] = keydict  # the key -> data dict, shared
    out.graph.update(g.graph)
    _CLEAR_CACHE(out)
    return out


def primary_lenders(m) -> np.ndarray:
    """Each borrower's main GPU lender (largest GPU term loan at start), -1 if none; it funds expansion."""
    from abm.finance.instruments import GPU_TERM

    loans = m.loans
    out = np.full(m.n, -1, dtype=np.int64)
    gpu = np.flatnonzero(loans.kind == GPU_TERM)
    order = gpu[np.argsort(loans.principal_usd[gpu], kind="stable")]
    out[loans.borrower[order]] = loans.lender[order]  # the largest comes last and wins
    return out


def write_graphml(graph: nx.MultiDiGraph, path) -> None:
    """Write ``graph`` as ``networkx.write_graphml`` does (pretty-printed; key ids ``d0, d1, ...``
    in order of first use: graph, then node, then edge attributes; multigraph edge ids from their
    keys), byte for byte, but streamed: networkx builds the whole XML tree first, which at 772k loan
    edges (``huge_network``) takes more than 7 GB. Attributes whose value is None are left out.

    Graphs this writer does not cover (not a MultiDiGraph, a graph ``id``, node or edge defaults,
    no nodes) go to networkx itself."""
    from networkx.readwrite.graphml import GraphML, GraphMLWriter

    if (
        type(graph) is not nx.MultiDiGraph
        or graph.number_of_nodes() == 0
        or any(k in graph.graph for k in ("id", "node_default", "edge_default"))
    ):
        nx.write_graphml(_without_none(graph), path)
        return
    xml_type = GraphMLWriter().xml_type
    keys: dict[tuple[str, str, str], str] = {}

    def key_id(name, value, scope: str) -> str:
        kind = xml_type.get(type(value))
        if kind is None:
            raise nx.NetworkXError(f"GraphML writer does not support {type(value)} as data values.")
        k = (str(name), kind, scope)
        found = keys.get(k)
        if found is None:
            found = keys[k] = f"d{len(keys)}"
        return found

    def data_lines(items, scope: str, indent: str) -> list[str]:
        out = []
        for name, value in items:
            if value is None:
                continue
            text = _escape_text(str(value))
            kid = key_id(name, value, scope)
            out.append(
                f'{indent}<data key="{kid}">{text}</data>\n'
                if text
                else f'{indent}<data key="{kid}" />\n'
            )
        return out

    def element(tag: str, attrs: str, lines: list[str], indent: str) -> str:
        if not lines:
            return f"{indent}<{tag} {attrs} />\n"
        return f"{indent}<{tag} {attrs}>\n" + "".join(lines) + f"{indent}</{tag}>\n"

    # keys are numbered in networkx's order (graph data first) but written before the body: the body
    # is written to a temporary file beside ``path`` and appended after the key declarations
    graph_data = data_lines(graph.graph.items(), "graph", "    ")
    body_path = f"{path}.body"
    try:
        with open(body_path, "w", encoding="utf-8") as body:
            for node, data in graph.nodes(data=True):
                lines = data_lines(data.items(), "node", "      ")
                body.write(element("node", f"id={_quote(str(node))}", lines, "    "))
            for u, v, key, data in graph.edges(keys=True, data=True):
                lines = data_lines(data.items(), "edge", "      ")
                attrs = f"source={_quote(str(u))} target={_quote(str(v))} id={_quote(str(key))}"
                body.write(element("edge", attrs, lines, "    "))
        with open(path, "w", encoding="utf-8") as out:
            out.write("<?xml version='1.0' encoding='utf-8'?>\n")
            out.write(
                f'<graphml xmlns="{GraphML.NS_GRAPHML}" xmlns:xsi="{GraphML.NS_XSI}" '
                f'xsi:schemaLocation="{GraphML.SCHEMALOCATION}">\n'
            )
            for (name, kind, scope), kid in reversed(keys.items()):
                out.write(
                    f'  <key id="{kid}" for="{scope}" attr.name={_quote(name)} '
                    f'attr.type="{kind}" />\n'
                )
            out.write('  <graph edgedefault="directed">\n')
            with open(body_path, encoding="utf-8") as body:
                while chunk := body.read(1 << 22):
                    out.write(chunk)
            out.write("".join(graph_data))
            out.write("  </graph>\n</graphml>\n")
    finally:
        if os.path.exists(body_path):
            os.unlink(body_path)


def _escape_text(text: str) -> str:
    """Text content as ElementTree escapes it."""
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _quote(value: str) -> str:
    """An attribute value in double quotes, as ElementTree escapes it."""
    for a, b in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&quot;"),
        ("\r", "&#13;"),
        ("\n", "&#10;"),
        ("\t", "&#09;"),
    ):
        if a in value:
            value = value.replace(a, b)
    return f'"{value}"'


def _without_none(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy of ``graph`` without None-valued node and edge attributes (GraphML has no None)."""
    g = graph.copy()
    for _, data in g.nodes(data=True):
        for key in [k for k, v in data.items() if v is None]:
            del data[key]
    for *_, data in g.edges(data=True, keys=True):
        for key in [k for k, v in data.items() if v is None]:
            del data[key]
    return g
