"""``ketasim drugs``: the drug catalog, or one drug with every value, unit, source and
tag."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ketasim.cli.app import (
    api,
    app,
    console,
    user_errors,
)
from ketasim.errors import KetasimError

SPECIES_ORDER = ("human", "rat", "mouse")



@app.command()
@user_errors()
def drugs(
    name: Annotated[str | None, typer.Argument(
        help="A drug id or alias: show every value with its unit, source and tag.",
        show_default=False)] = None,
) -> None:
    """List the drug catalog, or show one drug in full."""
    cat = api("catalog")()
    if name is None:
        console().print(_drug_list(cat))
        return
    try:
        drug = cat.drug(name)
    except KetasimError as exc:
        raise KetasimError(f"{exc}; `ketasim drugs` lists the catalog") from None
    _print_drug(cat, drug)


def _routes(cat: Any, drug_id: str, species: str) -> str:
    if species not in cat.species:
        return "-"
    try:
        routes = cat.routes(drug_id, species)
    except KetasimError:
        return "-"
    return ", ".join(routes) if routes else "-"


def _one_line(text: str, limit: int = 80) -> str:
    """The first sentence of ``text``, cut at a word boundary to at most ``limit`` chars."""
    text = " ".join(str(text).split())
    first = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z(])", text, maxsplit=1)[0].rstrip(".")
    if len(first) <= limit:
        return first
    return first[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _role(drug: Any) -> str:
    if drug.role == "compound" and not drug.dosable:
        return "metabolite"
    return str(drug.role)


def _drug_list(cat: Any) -> Table:
    table = Table(title="ketasim drug catalog", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, expand=True)
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("name", ratio=2)
    table.add_column("role", no_wrap=True)
    for sp in SPECIES_ORDER:
        table.add_column(f"{sp} routes", ratio=2)
    table.add_column("description", ratio=5)
    for d in cat.drugs.values():
        table.add_row(d.id, d.name, _role(d), *[_routes(cat, d.id, sp) for sp in SPECIES_ORDER],
                      _one_line(d.description))
    return table


def _sourced_rows(obj: Any, path: str, rows: list[tuple[str, Any]]) -> None:
    """Walk a catalog model; collect (path, Sourced) for every sourced value in it."""
    from pydantic import BaseModel

    from ketasim.catalog.schema import Sourced

    if obj is None:
        return
    if isinstance(obj, Sourced):
        rows.append((path, obj))
    elif isinstance(obj, BaseModel):
        for field in type(obj).model_fields:
            _sourced_rows(getattr(obj, field), f"{path}.{field}" if path else field, rows)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _sourced_rows(v, f"{path}.{k}" if path else str(k), rows)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            key = getattr(v, "to", None) or i  # metabolites are named by what they form
            _sourced_rows(v, f"{path}[{key}]", rows)


def _value_table(title: str, rows: list[tuple[str, Any]], strip: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("parameter", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("tag", no_wrap=True)
    table.add_column("source (note)", overflow="fold")
    for path, s in rows:
        label = path[len(strip):].lstrip(".") if strip and path.startswith(strip) else path
        src = s.source + (f" [dim]({s.note})[/dim]" if s.note else "")
        table.add_row(label or path, f"{s.value:g}", s.unit, s.tag, src)
    return table


def _print_drug(cat: Any, drug: Any) -> None:
    from rich.markup import escape

    con = console()
    con.print(f"[bold]{escape(drug.name)}[/bold]  [dim]id:[/dim] {drug.id}")
    if drug.aliases:
        con.print(f"[dim]aliases:[/dim] {escape(', '.join(drug.aliases))}")
    role = _role(drug) + ("" if drug.dosable else " (not dosable)")
    line = f"[dim]role:[/dim] {role}"
    if drug.readout:
        line += f"   [dim]readout family:[/dim] {drug.readout}"
    con.print(line)
    if drug.description:
        con.print(escape(drug.description))
    con.print("[dim]routes:[/dim] " + "; ".join(
        f"{sp}: {_routes(cat, drug.id, sp)}" for sp in SPECIES_ORDER))
    if drug.components:
        con.print("[dim]components (mass fraction):[/dim] " + ", ".join(
            f"{k} {v:g}" for k, v in drug.components.items()))

    rows: list[tuple[str, Any]] = []
    _sourced_rows(drug, "", rows)
    sections: dict[str, list[tuple[str, Any]]] = {}
    for path, s in rows:
        parts = path.split(".")
        if parts[0] == "pk" and len(parts) > 2:
            key = f"pk.{parts[1]}"
        elif parts[0] == "pd" and len(parts) > 2:
            key = f"pd.{parts[1]}"
        else:
            key = parts[0].split("[")[0]
        sections.setdefault(key, []).append((path, s))
    for key, items in sections.items():
        con.print(_value_table(escape(key), [(p, s) for p, s in items], key))
    if drug.notes:
        con.print("[bold]notes[/bold]")
        for n in drug.notes:
            con.print(f"- {escape(n)}")
