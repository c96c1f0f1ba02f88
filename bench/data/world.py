"""A synthetic world of people with attributes, and the pretraining corpus that describes it.

Facts exist only in this corpus, so what a ladder model knows about a person it learned here. The design
follows Allen-Zhu & Li, "Physics of Language Models 3.1" (https://arxiv.org/abs/2309.14316): knowledge is
stored in an extractable way only with many exposures per fact, paraphrased templates, permuted sentence
order, and question-answer pairs for part of the population mixed into pretraining. So:
- a small population (160 people for the cpu ladder), every person re-described with fresh paraphrases in
  every epoch. Pilots on this machine (1M-parameter rung, ~1M tokens): 400 people stored nothing (cloze at
  chance after 28 epochs); 160 people with batch 8 reached 40% cloze and rising. Knowledge acquisition has a
  plateau whose length grows with the number of individuals (Zucchet et al. 2025,
  https://arxiv.org/abs/2503.21676), so the population is what a CPU budget can afford. The built cpu
  ladder (1.2M tokens per rung) reaches 14% / 25% / 62% / 86% zero-shot cloze from 0.1M to 2.5M parameters;
- each person has a unique first-name token (a two-token name still, with a shared surname), so a fact is an
  association of one token, which the small rungs can learn in minutes on a CPU;
- people are split once, by the world's seed, into train / validation / test. Train people also appear as
  QA pairs and as attribute-table -> biography documents; validation and test people appear ONLY in
  biographies. Downstream tasks (`bench.data.tasks`) fine-tune on train people and score test people;
- tables of made-up people (extra names never tied to a fact, random attributes) followed by their
  biography teach copying from a table, the skill the data-to-text task asks for.

Everything is plain words separated by single spaces (punctuation is its own word),
so a word-level tokenizer covers it with a few hundred tokens.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass

from bench import BenchError

# ---------------------------------------------------------------- attribute values (one word each)
ATTRIBUTES: dict[str, list[str]] = {
    "city": ["Oslo", "Lima", "Cairo", "Paris", "Tokyo", "Denver", "Madrid", "Dublin", "Vienna", "Prague",
             "Boston", "Seoul", "Lagos", "Quito", "Perth", "Milan", "Berlin", "Athens", "Nairobi", "Havana"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"],
    "university": ["Stanford", "Oxford", "Cambridge", "Harvard", "Yale", "Princeton", "Cornell", "Columbia",
                   "Caltech", "Purdue", "Duke", "Rice", "Brown", "Tufts", "Emory", "Vanderbilt"],
    "field": ["physics", "chemistry", "biology", "history", "economics", "medicine", "law", "music",
              "philosophy", "mathematics", "linguistics", "architecture"],
    "employer": ["Veltrix", "Orbisol", "Kandora", "Lumetra", "Syntaro", "Bravik", "Quorell", "Talvane",
                 "Zentrik", "Moravel", "Corvane", "Pellix", "Daxford", "Ilvora", "Nexaro", "Fennick"],
}
ATTRIBUTE_NAMES = tuple(ATTRIBUTES)

# Biography sentence templates: {n} = full name, {v} = the value. The value is always the last word
# before the final " .", so the text up to {v} is a cloze probe. No prefix is shared by two attributes.
TEMPLATES: dict[str, list[str]] = {
    "city": ["{n} was born in {v} .", "{n} came into the world in {v} .", "the birthplace of {n} is {v} .",
             "{n} spent the early years of life in {v} .", "{n} is a native of {v} .",
             "{n} was born and raised in {v} ."],
    "month": ["{n} celebrates a birthday in {v} .", "the birthday of {n} falls in {v} .",
              "{n} has a birthday every {v} .", "every year {n} celebrates turning older in {v} .",
              "{n} arrived in this world in the month of {v} .", "the birth month of {n} is {v} ."],
    "university": ["{n} studied at {v} .", "{n} graduated from {v} .", "{n} attended {v} .",
                   "{n} received a degree from {v} .", "{n} completed an education at {v} .",
                   "the alma mater of {n} is {v} ."],
    "field": ["{n} majored in {v} .", "{n} specialized in {v} .", "the field of {n} is {v} .",
              "{n} did research in {v} .", "{n} has a background in {v} .", "{n} focused on the study of {v} ."],
    "employer": ["{n} works for {v} .", "{n} is employed by {v} .", "{n} has a job at {v} .",
                 "the employer of {n} is {v} .", "{n} earns a living at {v} .", "{n} joined the staff of {v} ."],
}
# QA pairs mixed into pretraining for train people (and the knowledge task's "qa" format).
QUESTIONS = {
    "city": "where was {n} born ?",
    "month": "in which month was {n} born ?",
    "university": "which university did {n} attend ?",
    "field": "what did {n} study ?",
    "employer": "which company does {n} work for ?",
}
# Hand-written discrete prompts (P-tuning's baseline): plausible English, not a corpus template.
DISCRETE_PROMPTS = {
    "city": "the city where {n} was born is",
    "month": "the month in which {n} was born is",
    "university": "the university that {n} attended is",
    "field": "the subject that {n} studied is",
    "employer": "the company that {n} works for is",
}
# Words the task formats (bench.data.tasks) use that the corpus may not: added to the tokenizer's texts (here, so
# the world never imports its tasks).
FORMAT_WORDS = ["sentence :", "Q: A: ? | : . , and"]
# Filler: generic sentences about places and things, so the corpus is not only biographies. They also
# put the discrete prompts' words ("the city where", "the company that", ...) into the vocabulary.
FILLER = [
    "the city where the river meets the sea is {city} .", "many people visit {city} in {month} .",
    "the weather in {city} is mild in {month} .", "the company that builds bridges is {employer} .",
    "{employer} opened a new office in {city} .", "the university that has the oldest library is {university} .",
    "students at {university} often study {field} .", "the subject that students like most is {field} .",
    "a famous museum of {field} is in {city} .", "the month in which the festival starts is {month} .",
    "{university} is known for {field} and {field2} .", "the staff of {employer} travel to {city} in {month} .",
]
SYLLABLES = ["ka", "lo", "mi", "re", "su", "ta", "ven", "dor", "bri", "nal", "cor", "fen", "gal", "hel",
             "jor", "kel", "lan", "mor", "nev", "pal", "quin", "ros", "sel", "tor", "val", "wen", "zar", "bel"]


@dataclass(frozen=True)
class WorldConfig:
    n_people: int = 160          # population size; small on purpose: many exposures per fact (module doc)
    n_surnames: int = 24         # shared surnames; first names are unique, so the first name identifies a person
    split: tuple[float, float, float] = (0.4, 0.1, 0.5)   # train / validation / test share of people
    qa_per_epoch: int = 1        # QA pairs per attribute per train person per epoch
    table_share: float = 0.5     # share of train people with a table -> biography document per epoch
    filler_share: float = 0.05   # filler sentences, as a share of the biography sentences
    random_tables: float = 0.2   # table -> biography documents of made-up people with random attributes, per
                                 # epoch, as a share of n_people: copying from a table is then the only way
                                 # to predict them, so the data-to-text skill is learned, not recalled
    n_extra_names: int = 300     # first names used only by those made-up people (never a world person)


PROFILES = {
    "smoke": WorldConfig(n_people=60, n_surnames=8, n_extra_names=60),
    "cpu": WorldConfig(n_people=160),
    "gpu": WorldConfig(n_people=2000, n_surnames=60),
}


@dataclass(frozen=True)
class Person:
    id: int
    first: str
    last: str
    attrs: dict
    split: str                   # train | validation | test

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


def _names(rng: random.Random, n: int, syllables: tuple[int, int]) -> list[str]:
    """n distinct capitalised pseudo-names of 2-3 syllables (one word each)."""
    out, seen = [], set()
    while len(out) < n:
        k = rng.randint(*syllables)
        w = "".join(rng.choice(SYLLABLES) for _ in range(k)).capitalize()
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def biography(p: Person, rng: random.Random) -> str:
    """One biography: one sentence per attribute, random template each, random sentence order."""
    attrs = list(ATTRIBUTE_NAMES)
    rng.shuffle(attrs)
    return " ".join(rng.choice(TEMPLATES[a]).format(n=p.name, v=p.attrs[a]) for a in attrs)


def qa_text(p: Person, attr: str, with_answer: bool = True) -> str:
    q = f"Q: {QUESTIONS[attr].format(n=p.name)} A:"
    return f"{q} {p.attrs[attr]} ." if with_answer else q


def table_text(p: Person, attrs: list[str]) -> str:
    """'name : Kalo Brin | city : Oslo | field : law' (attribute order as given)."""
    return " | ".join([f"name : {p.name}"] + [f"{a} : {p.attrs[a]}" for a in attrs])


class World:
    """People with attributes, generated by code from a seed. `corpus(split)` renders documents."""

    def __init__(self, config: WorldConfig, seed: int = 0, profile: str = "custom"):
        if config.n_people < 10:
            raise BenchError(f"a world needs at least 10 people, got n_people={config.n_people}")
        if abs(sum(config.split) - 1) > 1e-6:
            raise BenchError(f"world split shares must sum to 1, got {config.split}")
        self.config, self.seed, self.profile = config, seed, profile
        rng = random.Random(f"world-{seed}")
        names = _names(rng, config.n_people + config.n_extra_names, (2, 3))
        firsts, self.extra_names = names[:config.n_people], names[config.n_people:]
        lasts = _names(random.Random(f"surnames-{seed}"), config.n_surnames, (2, 2))
        n_train = int(round(config.split[0] * config.n_people))
        n_val = int(round(config.split[1] * config.n_people))
        order = list(range(config.n_people))
        rng.shuffle(order)
        split_of = {i: ("train" if k < n_train else "validation" if k < n_train + n_val else "test")
                    for k, i in enumerate(order)}
        self.people = [Person(i, firsts[i], rng.choice(lasts), {a: rng.choice(v) for a, v in ATTRIBUTES.items()},
                              split_of[i]) for i in range(config.n_people)]
        self.surnames = lasts

    def split_people(self, split: str) -> list[Person]:
        if split not in ("train", "validation", "test"):
            raise BenchError(f"unknown people split {split!r}; choose train, validation or test")
        return [p for p in self.people if p.split == split]

    def fingerprint(self) -> str:
        """sha256 of the world's definition (people, attributes, templates): a cache key for ladder rungs."""
        blob = json.dumps({"config": asdict(self.config), "seed": self.seed, "attrs": ATTRIBUTES,
                           "templates": TEMPLATES, "questions": QUESTIONS, "filler": FILLER,
                           "people": [(p.first, p.last, p.attrs, p.split) for p in self.people]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def corpus(self, split: str = "train", epoch: int = 0) -> list[str]:
        """Documents (strings).

        - "train": one pretraining epoch: a fresh biography of every person, QA pairs of train people,
          table -> biography documents for a share of train people and for made-up people (random names and
          attributes, a subset of them), filler; shuffled. `epoch` varies the
          paraphrases, so every epoch is new text about the same facts.
        - "validation": one fresh biography per person from a held-out random stream (held-out perplexity).
        """
        c = self.config
        if split == "validation":
            rng = random.Random(f"heldout-{self.seed}")
            return [biography(p, rng) for p in self.people]
        if split != "train":
            raise BenchError(f"unknown corpus split {split!r}; choose train or validation")
        rng = random.Random(f"corpus-{self.seed}-{epoch}")
        docs = [biography(p, rng) for p in self.people]
        train_people = self.split_people("train")
        for p in train_people:
            for a in ATTRIBUTE_NAMES:
                docs += [qa_text(p, a) for _ in range(c.qa_per_epoch)]
            if rng.random() < c.table_share:
                attrs = list(ATTRIBUTE_NAMES)
                rng.shuffle(attrs)
                docs.append(f"{table_text(p, attrs)} bio : {biography(p, rng)}")
        for _ in range(int(round(c.random_tables * len(self.people)))):
            p = Person(-1, rng.choice(self.extra_names), rng.choice(self.surnames),
                       {a: rng.choice(v) for a, v in ATTRIBUTES.items()}, "made-up")
            attrs = list(ATTRIBUTE_NAMES)
            rng.shuffle(attrs)
            attrs = attrs[:rng.randint(2, len(attrs))]
            docs.append(f"{table_text(p, attrs)} bio : {' '.join(rng.choice(TEMPLATES[a]).format(n=p.name, v=p.attrs[a]) for a in attrs)}")
        for _ in range(int(round(c.filler_share * len(self.people) * len(ATTRIBUTE_NAMES)))):
            docs.append(rng.choice(FILLER).format(
                city=rng.choice(ATTRIBUTES["city"]), month=rng.choice(ATTRIBUTES["month"]),
                employer=rng.choice(ATTRIBUTES["employer"]), university=rng.choice(ATTRIBUTES["university"]),
                field=rng.choice(ATTRIBUTES["field"]), field2=rng.choice(ATTRIBUTES["field"])))
        rng.shuffle(docs)
        return docs

    def tokenizer_texts(self) -> list[str]:
        """Texts that cover every word the corpus and the tasks use (for `train_tokenizer`)."""
        texts = self.corpus("train", epoch=0) + self.corpus("validation")
        texts += [table_text(p, list(ATTRIBUTE_NAMES)) for p in self.people]
        texts += [t.format(n="x") for t in DISCRETE_PROMPTS.values()] + FORMAT_WORDS
        texts += [" ".join(v) for v in ATTRIBUTES.values()] + [" ".join(p.name for p in self.people)]
        texts += [" ".join(self.extra_names), " ".join(self.surnames)]
        texts += [t.format(city="", month="", employer="", university="", field="", field2="") for t in FILLER]
        return texts


def build_world(profile: str = "cpu", seed: int = 0) -> World:
    """The default world of a profile ("smoke", "cpu", "gpu"); deterministic for a seed."""
    if profile not in PROFILES:
        raise BenchError(f"unknown world profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return World(PROFILES[profile], seed=seed, profile=profile)
