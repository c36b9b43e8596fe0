"""Score tables that need no simulator (reports read them without importing ALE): Atari random and human
scores for human-normalized scores."""

from __future__ import annotations

# Random-agent and human scores for the 26 Atari 100k games, as used for human-normalized scores
# (random, human); copied from the reference table.
ATARI_SCORES: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "bankheist": (14.2, 753.1),
    "battlezone": (2360.0, 37187.5),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "choppercommand": (811.0, 7387.8),
    "crazyclimber": (10780.5, 35829.4),
    "demonattack": (152.1, 1971.0),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "hero": (1027.0, 30826.4),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kungfumaster": (258.5, 22736.3),
    "mspacman": (307.3, 6951.6),
    "pong": (-20.7, 14.6),
    "privateeye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "roadrunner": (11.5, 7845.0),
    "seaquest": (68.4, 42054.7),
    "upndown": (533.4, 11693.2),
}


def human_normalized_score(game: str, score: float) -> float:
    """(score - random) / (human - random): 0 plays like a random agent, 1 like the human tester."""
    if game not in ATARI_SCORES:
        raise KeyError(
            f"no random/human scores for Atari game {game!r}; known: {', '.join(sorted(ATARI_SCORES))}"
        )
    random, human = ATARI_SCORES[game]
    return (score - random) / (human - random)


def domain(env: str) -> str:
    """ "dmc" for a DeepMind Control task (`domain-task`, always hyphenated), "atari" for an ALE game name."""
    return "dmc" if "-" in env else "atari"
