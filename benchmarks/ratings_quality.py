"""Rating quality against players of known strength: interval coverage, held-out calibration, rank order.

Each simulated tournament has `--agents` agents whose true Bradley–Terry strengths are evenly spaced, so that
neighbours win `--neighbour-win-rate` of their games against each other (0.6: a 60/40 head-to-head). The first
player has an advantage h = 0.3 log-odds (57% between equals, like white in chess), and games can be drawn:
with E = sigmoid(s_first - s_second + h), P(draw) = 0.2 * 4E(1 - E) (20% between equals, fewer in mismatches),
P(first wins) = E - P(draw) / 2, so a draw is worth half a win and first's expected score is exactly E.
Every pair plays `--games-per-pair` games, on seeds 0, 1, ... with each seed in both seatings; schedule order is
seed, then pair, then seating (round robin by rounds).

The games are rated by the arena's own code: `arena.ratings.rate` replayed in schedule order from fresh
ratings (TrueSkill, ordered by the leaderboard's mu - 3 sigma), and `arena.tournament.bradley_terry` (BT).
Calibration is measured on held-out games (a second tournament of the same size per simulated tournament, used
for nothing else) two ways: (a) each game as played, predicting the first mover's score (BT:
`first_move_probability`; TrueSkill: `arena.ratings.win_probability`, which knows no seats); (b) head to head,
predicting the score of a player picked by a coin (BT: `win_probability`, both seatings averaged; TrueSkill:
`win_probability`). Then the order: rank correlation with the truth, and how many games per pair make it stable.

Targets: coverage of the 95% bootstrap intervals >= 0.93; every calibration decile with at least 400 held-out
games within 0.05 of the observed score rate, for the predictions the tournament report shows (both systems,
head to head) and for BT's seat-aware one; TrueSkill knows no seats, so its (a) figure is printed, not judged.
Exit status 0 whether or not the targets are met.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ratings_quality.py [--tournaments 200] [--agents 8]
     [--games-per-pair 20] [--bootstrap 1000] [--neighbour-win-rate 0.6] [--seed 0]
(one BLAS thread: the matrices are tiny, and on a busy machine BLAS threads only wait for each other)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np
import trueskill
from scipy.special import expit, logit
from scipy.stats import kendalltau, spearmanr

from arena.ratings import rate, win_probability
from arena.tournament.bradley_terry import bradley_terry, fit

FIRST_MOVE = 0.3
DRAWS = 0.2
COVERAGE_TARGET = 0.93
CALIBRATION_TARGET = 0.05
MIN_DECILE = 400  # fewer held-out games than this: the observed rate's noise (up to 0.025 sd) is too large to judge
STABLE_TAU = 0.9
NEIGHBOURS_RIGHT = 0.95
TABLE_GAMES = (2, 4, 8, 16, 32, 64)
ADVICE_WIN_RATES = (0.55, 0.6, 0.7, 0.8)


def true_strengths(agents: int, neighbour_win_rate: float) -> np.ndarray:
    """Evenly spaced log-odds strengths, mean 0, neighbours at the given head-to-head win rate."""
    return logit(neighbour_win_rate) * (np.arange(agents) - (agents - 1) / 2)


def schedule(agents: int, games_per_pair: int) -> np.ndarray:
    """(first, second) per game: for each seed, every pair in both seatings."""
    pairs = [(i, j) for i in range(agents) for j in range(i + 1, agents)]
    seatings = [seats for i, j in pairs for seats in ((i, j), (j, i))]
    return np.array(seatings * (games_per_pair // 2))


def play(rng: np.random.Generator, strengths: np.ndarray, seats: np.ndarray) -> np.ndarray:
    """First's score (1, 0.5 or 0) in each game, drawn from the simulation's model."""
    expected = expit(strengths[seats[:, 0]] - strengths[seats[:, 1]] + FIRST_MOVE)
    draw = DRAWS * 4 * expected * (1 - expected)
    u = rng.random(len(seats))
    return np.where(u < expected - draw / 2, 1.0, np.where(u < expected + draw / 2, 0.5, 0.0))


def trueskill_ratings(agents: int, seats: np.ndarray, scores: np.ndarray) -> list[trueskill.Rating]:
    """The arena's TrueSkill update replayed in schedule order from fresh ratings."""
    ratings = [trueskill.Rating() for _ in range(agents)]
    for (first, second), score in zip(seats.tolist(), scores.tolist(), strict=True):
        ratings[first], ratings[second] = rate([ratings[first], ratings[second]], [score, 1 - score])
    return ratings


def conservative(ratings: Sequence[trueskill.Rating]) -> np.ndarray:
    """The leaderboard's sort key, mu - 3 sigma."""
    return np.array([r.mu - 3 * r.sigma for r in ratings])


def games_of(seats: np.ndarray, scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Game triples for the Bradley–Terry fit."""
    return [(int(f), int(s), float(y)) for (f, s), y in zip(seats, scores, strict=True)]


def order_scores(fitted: np.ndarray) -> tuple[float, float, float, float]:
    """Spearman, Kendall, exact order (0/1) and the fraction of neighbours ordered right, truth ascending.

    A balanced round robin gives equal totals equal BT strengths: equal to 6 decimals is a tie, and not right."""
    fitted, truth = np.round(fitted, 6), np.arange(len(fitted))
    right = np.diff(fitted) > 0
    return (float(spearmanr(fitted, truth).statistic), float(kendalltau(fitted, truth).statistic),
            float(right.all()), float(right.mean()))


def calibration(predicted: np.ndarray, observed: np.ndarray) -> list[tuple[int, float, float]]:
    """Per decile of predicted probability (all ten, empty ones as count 0): count, mean predicted, observed rate."""
    decile = np.clip((predicted * 10).astype(int), 0, 9)
    return [(int(np.sum(decile == d)), float(predicted[decile == d].mean()) if np.any(decile == d) else np.nan,
             float(observed[decile == d].mean()) if np.any(decile == d) else np.nan) for d in range(10)]


def worst(rows: list[tuple[int, float, float]]) -> float:
    """The largest |predicted - observed| over deciles with at least MIN_DECILE games."""
    return max((abs(p - o) for count, p, o in rows if count >= MIN_DECILE), default=np.nan)


def print_calibration(title: str, bt: list[tuple[int, float, float]], ts: list[tuple[int, float, float]]) -> None:
    """Print both systems' deciles side by side, and their worst judged decile."""
    print(f"\n{title}\n  decile   |  BT: games  predicted  observed  |diff|  |  TrueSkill: games  predicted  observed"
          "  |diff|")
    for d, rows in enumerate(zip(bt, ts, strict=True)):
        cells = [f"{c:9d}  {p:9.3f}  {o:8.3f}  {abs(p - o):6.3f}{'*' if 0 < c < MIN_DECILE else ' '}" if c
                 else f"{0:9d}  {'-':>9}  {'-':>8}  {'-':>6} " for c, p, o in rows]
        print(f"  {d / 10:.1f}-{(d + 1) / 10:.1f}  |  {cells[0]}  |  {' ' * 9}{cells[1]}")
    print(f"  worst decile: BT {worst(bt):.3f}, TrueSkill {worst(ts):.3f} (target <= {CALIBRATION_TARGET})")


def main_run(args: argparse.Namespace, strengths: np.ndarray) -> dict[str, float]:
    """Coverage, calibration and rank order at --games-per-pair; the figures the targets judge."""
    rng = np.random.default_rng(args.seed)
    seats = schedule(args.agents, args.games_per_pair)
    covered, bt_order, ts_order = [], [], []
    played: dict[str, list[np.ndarray]] = {"bt": [], "ts": [], "y": []}
    pairs: dict[str, list[np.ndarray]] = {"bt": [], "ts": [], "y": []}
    for t in range(args.tournaments):
        scores, held_out = play(rng, strengths, seats), play(rng, strengths, seats)
        bt = bradley_terry(args.agents, games_of(seats, scores), rounds=args.bootstrap, seed=args.seed + t)
        ts = trueskill_ratings(args.agents, seats, scores)
        covered.append((bt.low <= strengths) & (strengths <= bt.high))
        bt_order.append(order_scores(bt.strengths))
        ts_order.append(order_scores(conservative(ts)))
        played["bt"].append(np.array([bt.first_move_probability(f, s) for f, s in seats]))
        played["ts"].append(np.array([win_probability(ts[f], ts[s]) for f, s in seats]))
        played["y"].append(held_out)
        flip = rng.random(len(seats)) < 0.5  # whose side each game is seen from: a coin, so seatings cancel
        sides = np.where(flip[:, None], seats[:, ::-1], seats)
        pairs["bt"].append(np.array([bt.win_probability(a, b) for a, b in sides]))
        pairs["ts"].append(np.array([win_probability(ts[a], ts[b]) for a, b in sides]))
        pairs["y"].append(np.where(flip, 1 - held_out, held_out))
    coverage = float(np.mean(covered))
    print(f"\n95% bootstrap interval coverage (BT): {coverage:.3f} of {len(covered) * args.agents} (tournament, agent)"
          f" intervals (target >= {COVERAGE_TARGET})")
    played_rows = {k: calibration(np.concatenate(played[k]), np.concatenate(played["y"])) for k in ("bt", "ts")}
    pair_rows = {k: calibration(np.concatenate(pairs[k]), np.concatenate(pairs["y"])) for k in ("bt", "ts")}
    print(f"\nCalibration on {len(seats) * args.tournaments} held-out games, per decile of predicted probability "
          f"(* = under {MIN_DECILE} games, not judged)")
    print_calibration("(a) Each game as played: the first mover's score. BT: first_move_probability; TrueSkill: "
                      "win_probability(first, second), which knows no seats", played_rows["bt"], played_rows["ts"])
    print_calibration("(b) Head to head: one player's score, the player picked by a coin. BT: win_probability (both "
                      "seatings averaged); TrueSkill: win_probability", pair_rows["bt"], pair_rows["ts"])
    print("\nRank order vs truth (mean over tournaments)   Spearman  Kendall  exact order  neighbours right")
    for name, rows in (("BT strengths", bt_order), ("TrueSkill mu - 3 sigma", ts_order)):
        spear, tau, exact, adjacent = np.mean(rows, axis=0)
        print(f"  {name:<43} {spear:8.3f} {tau:8.3f} {exact:12.3f} {adjacent:16.3f}")
    return {"coverage": coverage, "bt_played": worst(played_rows["bt"]), "ts_played": worst(played_rows["ts"]),
            "bt_pairs": worst(pair_rows["bt"]), "ts_pairs": worst(pair_rows["ts"])}


def stability(rng: np.random.Generator, strengths: np.ndarray, games_per_pair: int, tournaments: int,
              rankers: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean (Spearman, Kendall, exact, neighbours right) per ranker over fresh tournaments of one size."""
    seats = schedule(len(strengths), games_per_pair)
    rows: dict[str, list] = {name: [] for name in rankers}
    for _ in range(tournaments):
        scores = play(rng, strengths, seats)
        for name, ranker in rankers.items():
            rows[name].append(order_scores(ranker(seats, scores)))
    return {name: np.mean(values, axis=0) for name, values in rows.items()}


def smallest(table: dict[int, np.ndarray], column: int, threshold: float) -> str:
    """The smallest games per pair whose figure in `column` reaches `threshold`, or a note that none did."""
    reached = [g for g, row in table.items() if row[column] >= threshold]
    return str(min(reached)) if reached else f"> {max(table)}"


def stability_tables(args: argparse.Namespace) -> None:
    """Games per pair against order stability, both systems, then BT's advice for other head-to-head gaps."""
    n = args.agents
    rankers = {"BT": lambda seats, scores: fit(n, games_of(seats, scores))[0],
               "TrueSkill": lambda seats, scores: conservative(trueskill_ratings(n, seats, scores))}
    rng = np.random.default_rng(args.seed + 1)
    strengths = true_strengths(n, args.neighbour_win_rate)
    print(f"\nOrder stability, {n} agents, neighbours {args.neighbour_win_rate:.0%}/{1 - args.neighbour_win_rate:.0%},"
          f" {args.tournaments} tournaments per row; stable = mean Kendall tau >= {STABLE_TAU}; neighbours = fraction"
          f" of neighbouring pairs in the right order")
    print("  games/pair  |  BT: Kendall  exact  neighbours  |  TrueSkill: Kendall  exact  neighbours")
    tables: dict[str, dict[int, np.ndarray]] = {name: {} for name in rankers}
    for g in TABLE_GAMES:
        result = stability(rng, strengths, g, args.tournaments, rankers)
        for name in rankers:
            tables[name][g] = result[name]
        (_, bt_tau, bt_exact, bt_adj), (_, ts_tau, ts_exact, ts_adj) = result["BT"], result["TrueSkill"]
        print(f"  {g:10d}  |  {bt_tau:11.3f}  {bt_exact:5.3f}  {bt_adj:10.3f}  |  {ts_tau:18.3f}  {ts_exact:5.3f}"
              f"  {ts_adj:10.3f}")
    for name, table in tables.items():
        print(f"  {name}: stable from {smallest(table, 1, STABLE_TAU)} games per pair; neighbours right >= "
              f"{NEIGHBOURS_RIGHT} from {smallest(table, 3, NEIGHBOURS_RIGHT)}")
    print(f"\nBT advice ({n} agents, evenly spaced): games per pair for a stable order | for neighbours right >= "
          f"{NEIGHBOURS_RIGHT}")
    for win_rate in ADVICE_WIN_RATES:
        spaced = true_strengths(n, win_rate)
        found = {g: stability(rng, spaced, g, args.tournaments, {"BT": rankers["BT"]})["BT"] for g in TABLE_GAMES}
        print(f"  neighbours {win_rate:.0%}/{1 - win_rate:.0%}: {smallest(found, 1, STABLE_TAU):>5} | "
              f"{smallest(found, 3, NEIGHBOURS_RIGHT):>5}   (Kendall, neighbours right by games/pair: "
              f"{', '.join(f'{g}: {row[1]:.2f} {row[3]:.2f}' for g, row in found.items())})")


def main() -> None:
    """Run the simulation, print each figure next to its target, and a PASS/FAIL line per target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tournaments", type=int, default=200)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--games-per-pair", type=int, default=20, help="even: each seed is played in both seatings")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--neighbour-win-rate", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    strengths = true_strengths(args.agents, args.neighbour_win_rate)
    print(f"{args.tournaments} tournaments, {args.agents} agents, {args.games_per_pair} games per pair "
          f"({len(schedule(args.agents, args.games_per_pair))} games, as many held out), {args.bootstrap} bootstrap "
          f"rounds; true strengths {np.round(strengths, 3).tolist()}, first-move advantage {FIRST_MOVE}, "
          f"draws {DRAWS:.0%} between equals")
    figures = main_run(args, strengths)
    stability_tables(args)
    print()
    coverage = figures["coverage"]
    print(f"{'PASS' if coverage >= COVERAGE_TARGET else 'FAIL'}  BT 95% interval coverage >= {COVERAGE_TARGET}: "
          f"{coverage:.3f}")
    for key, name in (("bt_played", "BT, games as played"), ("bt_pairs", "BT, head to head"),
                      ("ts_pairs", "TrueSkill, head to head")):
        ok = figures[key] <= CALIBRATION_TARGET
        print(f"{'PASS' if ok else 'FAIL'}  {name}: every decile within {CALIBRATION_TARGET}: worst {figures[key]:.3f}")
    print(f"INFO  TrueSkill, games as played: worst decile {figures['ts_played']:.3f}, not judged: TrueSkill has no "
          "seats, so it predicts a pairing (what the report shows), not who wins from which seat")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
