"""Play one game on a running arena server with OpenEnv's client (`pip install openenv-core`).

    arena serve &
    python examples/openenv_client.py http://127.0.0.1:8000 --env TicTacToe-v0

The client holds one seat; a house agent (`random` unless --opponent names another) holds the others. The
policy is trivial: the first move the board lists. The game is stored and rated like any other.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from openenv.core import GenericEnvClient


def first_listed_move(prompt: str) -> str:
    """The first bracketed move after the last 'Available Moves:' (or any bracketed token), else '[0]'."""
    listed = prompt.rsplit("Available Moves:", 1)[-1]
    moves = re.findall(r"\[[^\]]+\]", listed) or re.findall(r"\[[^\]]+\]", prompt)
    return moves[0] if moves else "[0]"


def reset_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `reset` data the command line asks for (only the options given)."""
    options = {"seed": args.seed, "seat": args.seat, "opponent": args.opponent, "agent": args.agent}
    return {key: value for key, value in options.items() if value is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the arena server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--env", default="TicTacToe-v0", help="the game (default TicTacToe-v0)")
    parser.add_argument("--seed", type=int, help="the game's seed (default: random)")
    parser.add_argument("--seat", type=int, help="the client's seat (default: drawn from the seed)")
    parser.add_argument("--opponent", help="the agent in the other seats: a house agent, random or first")
    parser.add_argument("--agent", help="the name the client plays under (default openenv)")
    args = parser.parse_args()

    base_url = f"{args.url.rstrip('/')}/openenv/{args.env}"  # the client opens {base_url}/ws
    with GenericEnvClient(base_url=base_url).sync() as env:
        result = env.reset(**reset_options(args))
        while not result.done:
            result = env.step({"message": first_listed_move(result.observation["prompt"])})
        state = env.state()
    info = result.observation["info"]
    print(f"episode {state['episode_id']} ({args.env}): seat {state['seat']} of {', '.join(state['players'])}")
    print(f"{info['status']}: {info['reason']}")
    print(f"reward {result.reward:+g}, rating change {info.get('rating_change') or 0:+.2f}")
    print(f"the stored game: {args.url.rstrip('/')}/api/episodes/{state['episode_id']}")


if __name__ == "__main__":
    main()
