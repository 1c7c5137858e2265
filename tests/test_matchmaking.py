"""Matchmaking rules: quality that widens with the wait, no self-pairing, challenges, house fill."""

from __future__ import annotations

import random

import pytest

from arena.server.matchmaking import Ticket, find_matches, required_quality
from arena.server.players import Player

HOUSE = ["random"]


def ticket(agent_id: int, since: float, env: str = "TicTacToe-v0", need: int = 2, rating=(25.0, 8.333),
           opponent: str | None = None, self_play: bool = False) -> Ticket:
    return Ticket(Player(agent_id, f"p{agent_id}", "remote"), [env], {env: need}, opponent, self_play, since,
                  {env: rating})


def match(tickets, now=100.0, house=HOUSE):
    return find_matches(tickets, now, house_wait=10.0, house=house, rng=random.Random(0))


def test_required_quality_falls_to_zero_over_the_wait() -> None:
    assert required_quality(0, 10) == pytest.approx(0.4)
    assert required_quality(5, 10) == pytest.approx(0.2)
    assert required_quality(12, 10) == 0.0


def test_newcomers_pair_at_once() -> None:
    a, b = ticket(1, 99.9), ticket(2, 99.95)
    [pairing] = match([a, b])
    assert pairing.tickets == [a, b] and pairing.house == []


def test_a_lopsided_pair_waits_then_pairs_as_the_range_widens() -> None:
    strong, weak = ticket(1, 99.0, rating=(45.0, 1.0)), ticket(2, 99.0, rating=(10.0, 1.0))
    assert match([strong, weak], now=100.0, house=[]) == []
    assert len(match([strong, weak], now=99.0 + 10.0, house=[])) == 1


def test_the_closer_rating_is_preferred() -> None:
    me = ticket(1, 99.0, rating=(30.0, 2.0))
    far, near = ticket(2, 99.0, rating=(10.0, 2.0)), ticket(3, 99.5, rating=(29.0, 2.0))
    [pairing] = match([me, far, near])
    assert pairing.tickets == [me, near]


def test_an_agent_never_meets_itself_unless_it_asks() -> None:
    a1, a2 = ticket(1, 99.0), ticket(1, 99.1)
    assert match([a1, a2], house=[]) == []
    a2.self_play = True
    assert len(match([a1, a2], house=[])) == 1


def test_house_agents_fill_after_the_wait_only() -> None:
    lonely = ticket(1, 95.0)
    assert match([lonely]) == []
    [pairing] = match([lonely], now=105.0)
    assert pairing.tickets == [lonely] and pairing.house == ["random"]


def test_a_challenge_waits_for_its_opponent_or_takes_a_house_agent_by_name() -> None:
    challenger = ticket(1, 50.0, opponent="p3")
    other = ticket(2, 50.0)
    assert all(challenger not in p.tickets for p in match([challenger, other], now=100.0))
    target = ticket(3, 99.0)
    [pairing] = [p for p in match([challenger, target]) if challenger in p.tickets]
    assert pairing.tickets == [challenger, target]
    [house_game] = match([ticket(4, 99.9, opponent="random")])
    assert house_game.house == ["random"]


def test_n_player_games_fill_every_seat() -> None:
    players = [ticket(i, 99.0 + i / 10, env="LiarsDice-v0", need=3) for i in range(1, 3)]
    assert match(players) == []
    [pairing] = match(players, now=120.0)
    assert len(pairing.tickets) + len(pairing.house) == 3
    three = [*players, ticket(9, 99.5, env="LiarsDice-v0", need=3)]
    [full] = match(three)
    assert len(full.tickets) == 3 and full.house == []


@pytest.mark.parametrize("a, b", [((25, 8.333), (25, 8.333)), ((30, 2), (10, 5)), ((40, 1), (39, 1.5))])
def test_closed_form_quality_equals_trueskill(a, b) -> None:
    import trueskill

    from arena.server.matchmaking import quality_1vs1

    ra, rb = trueskill.Rating(*a), trueskill.Rating(*b)
    assert quality_1vs1(ra, rb) == pytest.approx(trueskill.quality_1vs1(ra, rb))
