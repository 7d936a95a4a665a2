"""Real-looking English sentences, made here (no download): the int8 gate's retrieval judge.

The other mixes are word bags or one template with near-ties everywhere; a nearest neighbour
among them says little about retrieval. Here each text states one *fact* (a topic's actor,
action, thing, place and time) in one of several forms (statement, question, headline, a
sentence with a reason), and some facts are written twice in different forms. So the corpus
has what real retrieval has: paraphrases that are each other's clear nearest neighbour, texts
of one topic close together, and other topics far away.
"""

from __future__ import annotations

import random

TOPICS: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    # topic: (actors, actions, things, places)
    "cooking": (
        ["the chef", "my neighbour", "a food critic", "the bakery", "our kitchen staff"],
        ["baked", "seasoned", "slow-roasted", "burned", "served"],
        ["a sourdough loaf", "the lentil soup", "fresh pasta", "a lemon tart", "grilled salmon"],
        ["in the restaurant", "at the night market", "in a tiny flat", "at the village fair"],
    ),
    "finance": (
        ["the central bank", "investors", "the pension fund", "a regional lender", "the treasury"],
        ["raised", "cut", "froze", "borrowed", "hedged"],
        ["interest rates", "its bond holdings", "mortgage lending", "the dividend", "credit lines"],
        ["in Frankfurt", "on Wall Street", "across the eurozone", "in emerging markets"],
    ),
    "sports": (
        ["the home team", "a young striker", "the coach", "the visiting side", "the goalkeeper"],
        ["won", "lost", "appealed", "trained for", "dominated"],
        ["the championship final", "a penalty shootout", "the derby", "the title race"],
        ["at the national stadium", "in the rain", "away from home", "in extra time"],
    ),
    "weather": (
        ["a heatwave", "the storm", "heavy snowfall", "the monsoon", "a cold front"],
        ["closed", "flooded", "delayed", "damaged", "cooled"],
        ["the main roads", "several schools", "the harvest", "flights", "the coastal towns"],
        ["in the north", "along the coast", "over the mountains", "in the capital"],
    ),
    "software": (
        ["the developers", "a security team", "the database", "our build server", "the compiler"],
        ["patched", "crashed on", "rewrote", "optimised", "deprecated"],
        ["the login page", "a memory leak", "the search index", "the old API", "the test suite"],
        ["in production", "after the upgrade", "on every release", "in the cloud"],
    ),
    "health": (
        ["the hospital", "a nurse", "researchers", "the clinic", "doctors"],
        ["treated", "vaccinated", "studied", "screened", "discharged"],
        ["flu patients", "the children", "a rare disease", "heart failure", "sleep problems"],
        ["in the emergency ward", "in rural areas", "during the winter", "at the health centre"],
    ),
    "travel": (
        ["the airline", "a backpacker", "the tour guide", "hotel staff", "the ferry company"],
        ["cancelled", "booked", "recommended", "overbooked", "rerouted"],
        ["the night train", "a room with a view", "the island tour", "connecting flights"],
        ["in Lisbon", "near Kyoto", "on the Norwegian coast", "during the holidays"],
    ),
    "music": (
        ["the orchestra", "a jazz trio", "the band", "the choir", "a young pianist"],
        ["performed", "recorded", "rehearsed", "cancelled", "premiered"],
        ["a new symphony", "their debut album", "the concerto", "a folk song", "the encore"],
        ["at the opera house", "in a small club", "on the radio", "at the summer festival"],
    ),
    "science": (
        ["astronomers", "the lab", "a physicist", "biologists", "the space agency"],
        ["discovered", "measured", "simulated", "photographed", "confirmed"],
        ["a distant galaxy", "the gene", "dark matter", "a new exoplanet", "the enzyme"],
        ["with a new telescope", "in the Antarctic", "in the particle collider", "under ice"],
    ),
    "law": (
        ["the court", "the judge", "a lawyer", "the city council", "parliament"],
        ["overturned", "approved", "challenged", "postponed", "drafted"],
        ["the new law", "the parking rules", "a tax reform", "the ruling", "the contract"],
        ["in the high court", "after a long debate", "behind closed doors", "last session"],
    ),
}
TIMES = ["yesterday", "last week", "this morning", "in 2023", "on Monday", "again", "at last"]
REASONS = [
    "because nobody had planned for it",
    "which surprised almost everyone",
    "although the costs were high",
    "so the plans had to change",
    "and the reaction was mixed",
]


def fact(rng: random.Random) -> tuple[str, str, str, str, str]:
    actors, actions, things, places = TOPICS[rng.choice(sorted(TOPICS))]
    return (
        rng.choice(actors),
        rng.choice(actions),
        rng.choice(things),
        rng.choice(places),
        rng.choice(TIMES),
    )


def upper_first(text: str) -> str:
    """`str.capitalize` lower-cases the rest (Kyoto, API, Monday): only the first letter here."""
    return text[:1].upper() + text[1:]


def render(parts: tuple[str, str, str, str, str], form: int, rng: random.Random) -> str:
    actor, action, thing, place, time = parts
    if form == 0:
        return upper_first(f"{actor} {action} {thing} {place} {time}.")
    if form == 1:
        return f"Why {actor} {action} {thing} {place}?".replace("Why the", "Why has the")
    if form == 2:
        return f"{actor.title()} {action.title()} {thing.title()} {place.title()}"
    if form == 3:
        return f"{upper_first(time)}, {actor} {action} {thing} {place}, {rng.choice(REASONS)}."
    return f"Reports say {actor} {action} {thing} {place} {time}; more details are expected."


def real_sentences(count: int, seed: int) -> list[str]:
    """`count` distinct sentences; about one fact in three written twice, in two forms."""
    rng = random.Random(seed)
    picked: dict[str, None] = {}
    for _ in range(50 * count):
        if len(picked) >= count:
            break
        parts = fact(rng)
        forms = rng.sample(range(5), 2 if rng.random() < 0.35 else 1)
        for form in forms:
            picked.setdefault(render(parts, form, rng))
    if len(picked) < count:
        raise ValueError(f"only {len(picked)} distinct sentences, {count} asked")
    return list(picked)[:count]
