"""The "it" sentences of lesson 10: the roles stand where the Sentence says, twins differ only in the
adjective, held-out pairs never reach training, and the word tokenizer covers every sentence."""

from __future__ import annotations

import pytest
import torch

from gptcourse import referents as r


def test_word_lists_do_not_overlap():
    lists = [r.CREATURES, r.PLACES, r.CREATURE_ADJECTIVES, r.PLACE_ADJECTIVES, [f for v in r.VERBS for f in v]]
    words = [w for words in lists for w in words]
    assert len(words) == len(set(words))
    fixed = set(" ".join(r.TEMPLATES + (r.ANSWER,)).split())
    assert not fixed & set(words)


@pytest.mark.parametrize("template", r.TEMPLATES)
def test_every_role_stands_where_the_sentence_says(template):
    for adjective in ("tired", "wide"):
        s = r.make_sentence(template, "dog", "river", ("cross", "crossed"), adjective)
        w = s.words
        assert (w[s.creature], w[s.place], w[s.it], w[s.adjective]) == ("dog", "river", "it", adjective)
        assert w[s.predict] == "the" and w[s.predict - 3] == adjective
        assert w[s.predict + 1] == w[s.referent] == ("dog" if adjective == "tired" else "river")
        assert w[s.other] == ("river" if adjective == "tired" else "dog")
        assert s.it < s.adjective < s.predict and max(s.creature, s.place) < s.it


def test_templates_put_the_creature_first_half_the_time():
    firsts = [r.make_sentence(t, "dog", "river", ("cross", "crossed"), "tired") for t in r.TEMPLATES]
    assert sum(s.creature < s.place for s in firsts) == len(r.TEMPLATES) // 2


def test_held_out_pairs_never_reach_training():
    train, test = r.split_pairs(0.2, seed=0)
    assert r.FAMOUS_PAIR in test and r.FAMOUS_PAIR not in train
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(r.CREATURES) * len(r.PLACES)
    sentences = r.sample_sentences(train, 200, seed=1)
    assert all((s.words[s.creature], s.words[s.place]) in set(train) for s in sentences)


def test_twins_differ_only_in_the_adjective():
    twins = r.minimal_pairs(r.split_pairs(0.2, seed=0)[1], 20, seed=2)
    for a, b in zip(twins[0::2], twins[1::2]):
        assert a.about_creature and not b.about_creature
        differ = [i for i, (x, y) in enumerate(zip(a.words, b.words)) if x != y]
        assert differ == [a.adjective, a.predict - 3, a.predict + 1]  # two adjectives and the answer
        assert a.words[: a.adjective] == b.words[: b.adjective]


def test_tokenizer_and_tensors():
    tok = r.WordTokenizer.for_templates()
    sentences = r.sample_sentences(r.split_pairs(0.2, seed=0)[0], 50, seed=3)
    text = " ".join(sentences[0].words)
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.encode("the Animal")
    x, y = r.to_tensors(sentences, tok, 22)
    assert x.shape == y.shape == (50, 22)
    s = sentences[0]
    n = len(s.words)
    assert torch.equal(y[0, : n - 1], x[0, 1:n]) and (y[0, n - 1 :] == -100).all()
    assert torch.equal(r.positions(sentences, "it"), torch.tensor([t.it for t in sentences]))
    with pytest.raises(ValueError, match="does not fit"):
        r.to_tensors(sentences, tok, 10)


def test_bpe_tensors_find_every_word_in_gpt2_tokens():
    from gptcourse.tokenizers import GPT2Tokenizer

    bpe = GPT2Tokenizer()
    twins = r.minimal_pairs(r.split_pairs(0.2, seed=0)[1], 5, seed=2)
    ids, starts = r.bpe_tensors(twins, bpe)
    assert ids.shape[0] == starts.shape[0] == 10
    s = twins[0]
    text = bpe.decode(ids[0][ids[0] != 50256].tolist())
    assert text.startswith("The ") and f"too {s.words[s.adjective]}. The " in text and text.endswith(".")
    assert bpe.decode([ids[0, starts[0, s.it]]]) == " it"
    assert bpe.decode([ids[0, starts[0, s.predict]]]) == " the"
    assert bpe.decode(ids[0, starts[0, s.referent]: starts[0, s.referent + 1]].tolist()) == " " + s.words[s.referent]
