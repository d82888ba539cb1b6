"""What does "it" refer to? Generated sentences for a small word-level GPT (lesson 10).

    the dog didn't cross the river because it was too tired . the tired one was the dog .
    the dog didn't cross the river because it was too wide . the wide one was the river .

The adjective decides the referent: an adjective of a creature (tired, scared, ...) points to the creature,
an adjective of a place (wide, deep, ...) to the place. To continue the sentence a model must read the
adjective, find the noun of the matching kind earlier in the sentence and copy it. Half the templates put
the creature first and half put it second, so "the first noun" is right only half the time, and the
(creature, place) pairs held out of training make every test sentence new to the model.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from .tokenizers import GPT2Tokenizer

__all__ = ["CREATURES", "PLACES", "CREATURE_ADJECTIVES", "PLACE_ADJECTIVES", "VERBS", "TEMPLATES", "FAMOUS_PAIR",
           "Sentence", "make_sentence", "split_pairs", "sample_sentences", "minimal_pairs", "WordTokenizer",
           "to_tensors", "positions", "bpe_tensors"]

CREATURES = (
    "animal dog cat horse cow fox boy girl man woman child rabbit sheep goat deer bear wolf mouse duck pig lion "
    "tiger donkey hen farmer soldier king queen teacher doctor baby puppy kitten camel elephant monkey "
    "zebra turtle frog goose pony"
).split()
PLACES = (
    "street river road bridge field hill wall fence lake forest cave tunnel valley mountain desert park "
    "garden square yard path highway canal stream pond ditch beach swamp meadow cliff ridge track lane "
    "trail alley creek gorge bay harbor moat ravine"
).split()
CREATURE_ADJECTIVES = (
    "tired old young scared weak slow lazy sleepy hungry sick nervous shy timid weary frightened clumsy"
).split()
PLACE_ADJECTIVES = (
    "wide deep steep long dark busy crowded icy muddy high dangerous far noisy slippery rocky flooded"
).split()
VERBS = (  # (base form, past participle)
    ("cross", "crossed"), ("enter", "entered"), ("reach", "reached"), ("climb", "climbed"),
    ("pass", "passed"), ("explore", "explored"), ("approach", "approached"), ("visit", "visited"),
    ("jump", "jumped"), ("swim", "swum"), ("walk", "walked"), ("search", "searched"),
    ("leave", "left"), ("guard", "guarded"), ("find", "found"), ("use", "used"),
)
# {c}: the creature, {p}: the place, {v}/{ved}: the verb; the creature comes first in three, second in three.
TEMPLATES = (
    "the {c} didn't {v} the {p} because it was too {adj} .",
    "the {c} would not {v} the {p} since it was too {adj} .",
    "the {c} refused to {v} the {p} as it was too {adj} .",
    "the {p} was not {ved} by the {c} because it was too {adj} .",
    "the {p} was never {ved} by the {c} since it was too {adj} .",
    "the {p} could not be {ved} by the {c} as it was too {adj} .",
)
ANSWER = " the {adj} one was the {x} ."
FAMOUS_PAIR = ("animal", "street")  # the pair of the famous sentence: always held out of training
PAD = "<pad>"


@dataclass(frozen=True)
class Sentence:
    """One example: its words and where the words that matter stand (word positions, from 0)."""

    words: list[str]
    creature: int  # the creature noun
    place: int  # the place noun
    it: int  # "it"
    adjective: int  # the deciding adjective (after "too")
    predict: int  # the last "the": the model's output there names the referent
    about_creature: bool  # the adjective is a creature's, so "it" is the creature

    @property
    def referent(self) -> int:
        return self.creature if self.about_creature else self.place

    @property
    def other(self) -> int:
        return self.place if self.about_creature else self.creature


def make_sentence(template: str, creature: str, place: str, verb: tuple[str, str], adjective: str) -> Sentence:
    """The template filled in, followed by the answer ("the {adj} one was the {referent} .")."""
    about_creature = adjective in CREATURE_ADJECTIVES
    text = template.format(c=creature, p=place, v=verb[0], ved=verb[1], adj=adjective)
    text += ANSWER.format(adj=adjective, x=creature if about_creature else place)
    words = text.split()
    return Sentence(words=words, creature=words.index(creature), place=words.index(place), it=words.index("it"),
                    adjective=words.index("too") + 1, predict=len(words) - 3, about_creature=about_creature)


def split_pairs(test_share: float, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """All (creature, place) pairs, shuffled and cut into (training pairs, held-out pairs); FAMOUS_PAIR is held out."""
    pairs = [(c, p) for c in CREATURES for p in PLACES if (c, p) != FAMOUS_PAIR]
    random.Random(seed).shuffle(pairs)
    n_test = round(test_share * len(pairs))
    return pairs[n_test:], [FAMOUS_PAIR] + pairs[:n_test]


def sample_sentences(pairs: Sequence[tuple[str, str]], n: int, seed: int) -> list[Sentence]:
    """n random sentences over the given pairs: template, verb and adjective drawn uniformly."""
    rng = random.Random(seed)
    adjectives = CREATURE_ADJECTIVES + PLACE_ADJECTIVES
    return [make_sentence(rng.choice(TEMPLATES), *rng.choice(pairs), rng.choice(VERBS), rng.choice(adjectives))
            for _ in range(n)]


def minimal_pairs(pairs: Sequence[tuple[str, str]], n: int, seed: int) -> list[Sentence]:
    """2n sentences in twins that differ only in the adjective: the first twin's referent is the creature,
    the second's the place. Everything before the adjective is the same in both, so a causal model's state
    there is the same too."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template, pair, verb = rng.choice(TEMPLATES), rng.choice(pairs), rng.choice(VERBS)
        out.append(make_sentence(template, *pair, verb, rng.choice(CREATURE_ADJECTIVES)))
        out.append(make_sentence(template, *pair, verb, rng.choice(PLACE_ADJECTIVES)))
    return out


class WordTokenizer:
    """One token per word (split on spaces); the vocabulary is every word the templates can produce."""

    kind = "word"

    def __init__(self, words: Iterable[str]):
        self.words = sorted(set(words))
        self.stoi = {w: i for i, w in enumerate(self.words)}
        self.vocab_size = len(self.words)

    @classmethod
    def for_templates(cls) -> WordTokenizer:
        fixed = " ".join(TEMPLATES + (ANSWER,)).replace("{", " ").replace("}", " ").split()
        verbs = [form for verb in VERBS for form in verb]
        return cls(fixed + CREATURES + PLACES + CREATURE_ADJECTIVES + PLACE_ADJECTIVES + verbs + [PAD])

    def encode(self, text: str) -> list[int]:
        unknown = [w for w in text.split() if w not in self.stoi]
        if unknown:
            raise ValueError(f"words outside the vocabulary: {unknown[:5]} (use lower case, and a space before '.')")
        return [self.stoi[w] for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[int(i)] for i in ids)


def to_tensors(
    sentences: Sequence[Sentence], tokenizer: WordTokenizer, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x and next-word targets y, both (N, length): padded on the right, padding's targets -100 (which
    cross-entropy skips by default)."""
    pad = tokenizer.stoi[PAD]
    ids = torch.full((len(sentences), length + 1), pad)  # (N, length + 1)
    for row, s in enumerate(sentences):
        if len(s.words) > length + 1:
            raise ValueError(f"a sentence of {len(s.words)} words does not fit length {length} (+ its last target)")
        ids[row, : len(s.words)] = torch.tensor(tokenizer.encode(" ".join(s.words)))
    x, y = ids[:, :-1].clone(), ids[:, 1:].clone()  # (N, length) each: y is x shifted by one
    y[y == pad] = -100
    return x, y


def positions(sentences: Sequence[Sentence], role: str) -> torch.Tensor:
    """(N,) the position of one role ("it", "adjective", "predict", "creature", "place", "referent", "other")."""
    return torch.tensor([getattr(s, role) for s in sentences])


def bpe_tensors(sentences: Sequence[Sentence], tokenizer: GPT2Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The sentences as GPT-2 reads them ("The dog didn't cross ... too tired. The tired one was the dog."), in
    tokenizer's BPE: ids (N, T) padded on the right with <|endoftext|>, and starts (N, W), the position of each
    word's first token, so that starts[n, s.it] is where "it" stands among sentence n's tokens."""
    rows, starts = [], []
    for s in sentences:
        ids, first = [], []
        for i, word in enumerate(s.words):
            text = word.capitalize() if i == 0 or s.words[i - 1] == "." else word
            first.append(len(ids))
            ids += tokenizer.encode(text if i == 0 or word == "." else " " + text)
        rows.append(ids)
        starts.append(first)
    (end,) = tokenizer.encode("<|endoftext|>")
    T, W = max(map(len, rows)), max(map(len, starts))
    out = torch.full((len(rows), T), end)
    first_token = torch.zeros(len(rows), W, dtype=torch.long)
    for n, (ids, first) in enumerate(zip(rows, starts)):
        out[n, : len(ids)] = torch.tensor(ids)
        first_token[n, : len(first)] = torch.tensor(first)
    return out, first_token
