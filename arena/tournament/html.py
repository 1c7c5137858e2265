"""The tournament report as one self-contained HTML page: inline CSS and SVG charts, no scripts, no network.

`render_html` serves `arena tournament report --html`. Every string taken from the report is escaped, since
agent names come from users.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from arena.tournament.report import BradleyTerryStanding, HeadToHead, TournamentReport, TrueSkillStanding

CHAR_WIDTH = 7.5  # rough width of one label character in the SVG charts, in px
LABEL_CHARS = 28  # longer names are shortened in the charts (the full name is in the tooltip and the tables)
ROW_HEIGHT = 28
PLOT_WIDTH = 640
CELL = 52
LOW_COLOUR = (215, 48, 39)  # score 0: red
HIGH_COLOUR = (49, 104, 173)  # score 1: blue
DIAGONAL_COLOUR = "#d4d4d4"
UNMET_COLOUR = "#f2f2f2"
TEXT_CLASS = ' class="text"'

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d1d1f; background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.7em; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.2em; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.02em; margin: 18px 0 6px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
p.explain { max-width: 78ch; color: #333; }
.note { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th { background: #f5f5f7; font-weight: 600; }
th.text, td.text { text-align: left; white-space: normal; overflow-wrap: anywhere; max-width: 32ch; }
tbody tr:nth-child(even) td { background: #fafafa; }
svg { display: block; max-width: 100%; height: auto; font-size: 13px; }
svg text { fill: #1d1d1f; }
svg .interval { stroke: #3168ad; stroke-width: 6; stroke-linecap: round; opacity: 0.45; }
svg .rating { fill: #1f4e8c; }
svg .grid { stroke: #e6e6e6; }
svg .axis { stroke: #888; }
svg .average { stroke: #999; stroke-dasharray: 4 3; }
svg .cell { stroke: #fff; stroke-width: 1; }
svg .score { font-size: 13px; pointer-events: none; }
svg .swatch { stroke: #ccc; stroke-width: 0.5; }
section { break-inside: avoid; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  tbody tr:nth-child(even) td { background: none; }
}
"""


def render_html(report: TournamentReport) -> str:
    """The report as one HTML5 document that needs no network."""
    sections = [_header(report), _bradley_terry_section(report), _heat_map_section(report),
                _trueskill_section(report), _pairings_section(report), _per_env_section(report),
                _conduct_section(report)]
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Tournament {escape(report.name)}</title>\n<style>{CSS}</style>\n</head>\n"
            "<body>\n<main>\n" + "\n".join(sections) + "\n</main>\n</body>\n</html>\n")


# --- sections --------------------------------------------------------------------------------------


def _header(report: TournamentReport) -> str:
    """The tournament's name, facts and what each rating means."""
    aborted = f"{report.aborted_attempts}" + (" (their games were replayed)" if report.aborted_attempts else "")
    facts = [("Format", report.format), ("Status", report.status), ("Envs", ", ".join(report.envs)),
             ("Games", f"{report.games_played} played of {report.games_scheduled} scheduled"),
             ("Aborted tries", aborted), ("Seeds", str(len(report.seeds))), ("Rounds", str(report.rounds)),
             ("Agents", str(len(report.agents))),
             ("Started", _when(report.created_at)), ("Ended", _when(report.ended_at) if report.ended_at else "—")]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    explain = (
        "<strong>TrueSkill</strong> replays the tournament's games in schedule order from fresh ratings; an "
        "agent's rating is mu − 3 sigma, a cautious estimate that rises as its uncertainty (sigma) shrinks. "
        "<strong>Bradley–Terry</strong> fits every agent's strength to all games at once by maximum likelihood "
        "(order does not matter), with a first-move advantage of "
        f"{report.first_move_advantage:+.0f} points; it is shown on an Elo-like scale where 1000 is the field's "
        "average and 400 points mean 10-to-1 odds, with 95% intervals from "
        f"{report.bootstrap_rounds} bootstrap resamples of the games. A score is wins plus half the draws, per game.")
    return (f'<header>\n<h1>Tournament {escape(report.name)}</h1>\n<dl class="facts">{rows}</dl>\n'
            f'<p class="explain">{explain}</p>\n</header>')


def _bradley_terry_section(report: TournamentReport) -> str:
    """The Bradley–Terry chart and its table."""
    rows = [[str(rank), s.agent, f"{s.rating:.0f}", f"{s.low:.0f} to {s.high:.0f}"]
            for rank, s in enumerate(report.bradley_terry, 1)]
    table = _table("bradley-terry", ["#", "agent", "rating", "95% interval"], rows, text_columns=2)
    return (f"<section>\n<h2>Bradley–Terry ratings</h2>\n{_bradley_terry_chart(report.bradley_terry)}\n"
            '<p class="note">Dot: rating; bar: 95% bootstrap interval; dashed line: the field’s average '
            f"(1000).</p>\n{table}\n</section>")


def _heat_map_section(report: TournamentReport) -> str:
    """The head-to-head heat map with its legend."""
    order = [s.agent for s in report.trueskill]
    return ('<section>\n<h2>Head to head</h2>\n<p class="note">Each cell is the row agent’s score against '
            "the column agent (wins plus half the draws, per game); hover for wins-draws-losses.</p>\n"
            f"{_heat_map(order, report.head_to_head)}\n{_legend()}\n</section>")


def _trueskill_section(report: TournamentReport) -> str:
    """The TrueSkill standings table."""
    return (f"<section>\n<h2>TrueSkill standings</h2>\n{_standings_table('standings', report.trueskill)}\n"
            "</section>")


def _pairings_section(report: TournamentReport) -> str:
    """Each pairing's observed score next to both systems' predictions."""
    rows = [[p.agent, p.opponent, str(p.games), f"{p.observed:.2f}", f"{p.trueskill:.2f}", f"{p.bradley_terry:.2f}"]
            for p in report.predictions]
    headers = ["agent", "opponent", "games", "observed score", "TrueSkill predicts", "Bradley–Terry predicts"]
    return ('<section>\n<h2>Pairings: observed and predicted</h2>\n<p class="note">The agent’s observed '
            "score against the opponent, and each system’s predicted win probability for it.</p>\n"
            f"{_table('pairings', headers, rows, text_columns=2)}\n</section>")


def _per_env_section(report: TournamentReport) -> str:
    """TrueSkill standings over each env's games alone."""
    parts = [f"<h3>{escape(env.env_id)} ({env.games} games)</h3>\n"
             f"{_standings_table(f'env-{index}', env.standings)}" for index, env in enumerate(report.per_env)]
    return "<section>\n<h2>Standings per env</h2>\n" + "\n".join(parts) + "\n</section>"


def _conduct_section(report: TournamentReport) -> str:
    """Invalid moves, timeouts, errors, time and tokens per agent."""
    rows = [[c.agent, str(c.moves), f"{c.invalid_moves} ({c.invalid_rate:.1%})", f"{c.timeouts} ({c.timeout_rate:.1%})",
             str(c.errors), f"{c.seconds_per_move:.3f}", str(c.prompt_tokens), str(c.completion_tokens)]
            for c in report.conduct]
    headers = ["agent", "moves", "invalid moves", "timeouts", "errors", "s/move", "tokens in", "tokens out"]
    return f"<section>\n<h2>Conduct</h2>\n{_table('conduct', headers, rows, text_columns=1)}\n</section>"


# --- tables ----------------------------------------------------------------------------------------


def _standings_table(table_id: str, standings: Sequence[TrueSkillStanding]) -> str:
    """TrueSkill standings: rank, agent, rating, mu, sigma, games, W, D, L."""
    rows = [[str(rank), s.agent, f"{s.rating:.2f}", f"{s.mu:.2f}", f"{s.sigma:.2f}", str(s.games), str(s.wins),
             str(s.draws), str(s.losses)] for rank, s in enumerate(standings, 1)]
    headers = ["#", "agent", "rating (mu − 3 sigma)", "mu", "sigma", "games", "W", "D", "L"]
    return _table(table_id, headers, rows, text_columns=2)


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int) -> str:
    """An HTML table, every cell escaped; the first `text_columns` columns are left-aligned text."""
    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(f"<{tag}{TEXT_CLASS if i < text_columns else ''}>{escape(v)}</{tag}>"
                       for i, v in enumerate(values))
    body = "".join(f"<tr>{cells('td', row)}</tr>\n" for row in rows)
    body = body or f'<tr><td class="text" colspan="{len(headers)}">no games played yet</td></tr>\n'
    return (f'<table id="{escape(table_id)}">\n<thead><tr>{cells("th", headers)}</tr></thead>\n'
            f"<tbody>\n{body}</tbody>\n</table>")


# --- charts ----------------------------------------------------------------------------------------


def _bradley_terry_chart(standings: Sequence[BradleyTerryStanding]) -> str:
    """One row per agent (best first): a dot at the rating, a bar for its 95% interval, an axis below."""
    label = _label_width([s.agent for s in standings])
    ticks = _ticks(min(s.low for s in standings), max(s.high for s in standings))
    x = _scale(ticks[0], ticks[-1], label, label + PLOT_WIDTH)
    height = len(standings) * ROW_HEIGHT + 40
    best_first = sorted(standings, key=lambda s: -s.rating)
    rows = "".join(_bradley_terry_row(i, s, x, label) for i, s in enumerate(best_first))
    return (f'<svg id="bt-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="Bradley–Terry ratings with 95% intervals" width="{label + PLOT_WIDTH + 20}" '
            f'height="{height}" viewBox="0 0 {label + PLOT_WIDTH + 20} {height}">\n'
            f"{_axis(ticks, x, len(standings) * ROW_HEIGHT + 8)}{rows}</svg>")


def _bradley_terry_row(index: int, s: BradleyTerryStanding, x: Callable[[float], float], label: float) -> str:
    """One agent's row of the Bradley–Terry chart."""
    y = 8 + index * ROW_HEIGHT + ROW_HEIGHT / 2
    tip = escape(f"{s.agent}: {s.rating:.0f} (95% interval {s.low:.0f} to {s.high:.0f})")
    return (f'<g class="agent-row"><title>{tip}</title>'
            f'<text x="{label - 8}" y="{y + 4}" text-anchor="end">{_short(s.agent)}</text>'
            f'<line class="interval" x1="{x(s.low):.1f}" y1="{y}" x2="{x(s.high):.1f}" y2="{y}"/>'
            f'<circle class="rating" cx="{x(s.rating):.1f}" cy="{y}" r="5"/></g>\n')


def _axis(ticks: Sequence[float], x: Callable[[float], float], baseline: float) -> str:
    """Vertical grid lines with tick labels along the bottom, and a dashed line at the average (1000)."""
    grid = "".join(f'<line class="grid" x1="{x(t):.1f}" y1="4" x2="{x(t):.1f}" y2="{baseline}"/>'
                   f'<text x="{x(t):.1f}" y="{baseline + 16}" text-anchor="middle">{t:g}</text>' for t in ticks)
    average = (f'<line class="average" x1="{x(1000):.1f}" y1="4" x2="{x(1000):.1f}" y2="{baseline}"/>'
               if ticks[0] <= 1000 <= ticks[-1] else "")
    return (f'<g class="axis-ticks">{grid}<line class="axis" x1="{x(ticks[0]):.1f}" y1="{baseline}" '
            f'x2="{x(ticks[-1]):.1f}" y2="{baseline}"/>{average}</g>\n')


def _heat_map(order: Sequence[str], head_to_head: Sequence[HeadToHead]) -> str:
    """The win matrix: row agent's score against column agent, coloured red (lost) to white to blue (won)."""
    pairs = {(h.agent, h.opponent): h for h in head_to_head}
    label = _label_width(order)
    top = min(max(len(n) for n in order), LABEL_CHARS) * CHAR_WIDTH * 0.72 + 16
    size = len(order) * CELL
    columns = "".join(f'<text transform="translate({label + (j + 0.5) * CELL + 4:.1f},{top - 6:.1f}) rotate(-45)">'
                      f"<title>{escape(n)}</title>{_short(n)}</text>" for j, n in enumerate(order))
    rows = "".join(f'<text x="{label - 8}" y="{top + (i + 0.5) * CELL + 4:.1f}" text-anchor="end">'
                   f"<title>{escape(n)}</title>{_short(n)}</text>" for i, n in enumerate(order))
    cells = "".join(_heat_cell(label + j * CELL, top + i * CELL, a, b, pairs.get((a, b)))
                    for i, a in enumerate(order) for j, b in enumerate(order))
    width, height = label + size + top, top + size + 4
    return (f'<svg id="heat-map" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Head-to-head '
            f'scores" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">\n'
            f"{columns}\n{rows}\n{cells}</svg>")


def _heat_cell(x: float, y: float, agent: str, opponent: str, h: HeadToHead | None) -> str:
    """One cell: coloured by score with the score printed, W-D-L in its tooltip; grey on the diagonal or unmet."""
    if agent == opponent or h is None:
        fill, text = (DIAGONAL_COLOUR, "") if agent == opponent else (UNMET_COLOUR, "–")
        tip = escape(agent if agent == opponent else f"{agent} never played {opponent}")
        ink = "#888"
    else:
        fill, text, ink = _colour(h.score), f"{h.score:.2f}", "#fff" if abs(h.score - 0.5) > 0.3 else "#1d1d1f"
        tip = escape(f"{agent} vs {opponent}: {h.wins}-{h.draws}-{h.losses} (W-D-L) in {h.games} games, "
                     f"score {h.score:.2f}")
    return (f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{CELL}" height="{CELL}" fill="{fill}">'
            f'<title>{tip}</title></rect><text class="score" x="{x + CELL / 2:.1f}" y="{y + CELL / 2 + 4:.1f}" '
            f'text-anchor="middle" style="fill:{ink}">{text}</text>\n')


def _legend() -> str:
    """The heat map's colour scale from 0 to 1, and the grey for pairs that never met."""
    steps = 11
    swatches = "".join(f'<rect class="swatch" x="{44 + i * 24}" y="4" width="24" height="14" '
                       f'fill="{_colour(i / (steps - 1))}"/>' for i in range(steps))
    labels = "".join(f'<text x="{44 + i * 24 + 12}" y="34" text-anchor="middle">{v}</text>'
                     for i, v in ((0, "0"), (5, "0.5"), (10, "1")))
    return (f'<svg class="legend" xmlns="http://www.w3.org/2000/svg" width="440" height="40" '
            f'viewBox="0 0 440 40"><text x="0" y="16">score</text>{swatches}{labels}'
            f'<rect class="swatch" x="{64 + steps * 24}" y="4" width="24" height="14" fill="{UNMET_COLOUR}"/>'
            f'<text x="{94 + steps * 24}" y="16">never met</text></svg>')


# --- helpers ---------------------------------------------------------------------------------------


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high] with a little margin."""
    span = max(high - low, 50.0)
    low, high = low - span * 0.04, high + span * 0.04
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [k * step for k in range(first, last + 1)]


def _scale(low: float, high: float, left: float, right: float) -> Callable[[float], float]:
    """A function from ratings in [low, high] to x pixels in [left, right]."""
    return lambda value: left + (value - low) / (high - low) * (right - left)


def _label_width(names: Sequence[str]) -> float:
    """Room for the longest (shortened) agent name left of a chart."""
    return min(max(len(n) for n in names), LABEL_CHARS) * CHAR_WIDTH + 16


def _short(name: str) -> str:
    """An agent name for a chart label: escaped, and shortened with an ellipsis when long."""
    return escape(name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…")


def _colour(score: float) -> str:
    """A diverging colour: red at 0, white at 0.5, blue at 1."""
    end, t = (LOW_COLOUR, 1 - 2 * score) if score < 0.5 else (HIGH_COLOUR, 2 * score - 1)
    r, g, b = (round(255 + (c - 255) * t) for c in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def _when(moment: datetime) -> str:
    """A timestamp to the minute."""
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()
