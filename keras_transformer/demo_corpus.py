"""A built-in English→Hindi demo corpus, generated from a small grammar and lexicon.

Pure standard library. Every pair is one simple clause, English SVO and Hindi SOV:

    the girls read the books.          लड़कियों ने किताबें पढ़ीं।
    he does not go to the market.      वह बाज़ार नहीं जाता।
    is the good boy eating the apple?  क्या अच्छा लड़का सेब खा रहा है?

Constructions: four tenses (present habitual, present progressive, simple past, future) times
three moods (affirmative, negative with नहीं before the verb, yes/no question with क्या ... ?).
Subjects are pronouns (I, you = तुम, he/she = वह, we, they = वे) and nouns of both genders in
singular and plural; verbs are intransitive (with an optional place) or transitive (with an
object from the verb's semantic class: eat→food, drink→drinks, read→reading matter, ...).

Agreement modelled in Hindi:
  * verbs agree with the subject in gender, number and person: जाता/जाती/जाते (+ हूँ/हो/है/हैं),
    जा रहा/रही/रहे, future जाऊँगा/जाओगे/जाएगी/जाएँगे, intransitive past गया/गई/गए/गईं;
  * simple past of a transitive verb uses the ergative: oblique noun + ने (लड़के ने, लड़कियों ने)
    or fused pronoun (मैंने, तुमने, उसने, हमने, उन्होंने), and the verb agrees with an unmarked
    object (लड़की ने सेब खाया, लड़के ने किताबें पढ़ीं); a को-marked object leaves it in the
    default masculine singular (लड़कियों ने लड़के को बुलाया);
  * adjectives agree with their noun (अच्छा लड़का, अच्छी लड़की, अच्छे लड़के) and take the oblique
    before postpositions (अच्छे लड़के ने); लाल is invariable;
  * nouns take the oblique before postpositions: कमरे में, छत पर, स्कूल से, लड़कों को, and a
    goal of जाना stands bare (वह बाज़ार जाता है);
  * the negative habitual drops the auxiliary, always (वह नहीं जाता, लड़कियाँ नहीं जातीं);
    the progressive keeps it (वह नहीं जा रहा है).
English I/you/we/they do not show gender, so their Hindi is the default masculine; he/she and
the nouns carry gender. Nouns always take "the". Hindi text is Unicode NFC.

The test split holds out (subject, verb, object) triples — (subject, verb, place) or
(subject, verb, None) for intransitive verbs — chosen with the seed: all their sentences go to
test, none to train, while every word of the test sentences also occurs in train.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from dataclasses import dataclass

M, F = "m", "f"
HABITUAL, PROGRESSIVE, PAST, FUTURE = "habitual", "progressive", "past", "future"
AFFIRMATIVE, NEGATIVE, QUESTION = "affirmative", "negative", "question"
HELD_OUT_FRACTION = 0.07

Triple = tuple[str, str, "str | None"]


# ---------------------------------------------------------------------------------------- lexicon
@dataclass(frozen=True)
class Pronoun:
    key: str
    en: str
    hi: str
    hi_ergative: str   # the pronoun fused with ने
    person: int        # 1, 2, 3
    plural: bool       # grammatical number (तुम is plural)
    gender: str


@dataclass(frozen=True)
class Noun:
    key: str
    en_sg: str
    en_pl: str | None  # None: a mass noun, singular only
    hi_sg: str
    hi_pl: str | None
    obl_sg: str        # oblique, the form before a postposition
    obl_pl: str | None
    gender: str
    adjectives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Adjective:
    key: str
    en: str
    hi_m_sg: str       # direct masculine singular
    hi_m_other: str    # masculine oblique or plural
    hi_f: str

    def hindi(self, gender: str, plural: bool, oblique: bool) -> str:
        if gender == F:
            return self.hi_f
        return self.hi_m_other if plural or oblique else self.hi_m_sg


@dataclass(frozen=True)
class Place:
    key: str
    en: str            # "the room"
    obl: str           # कमरे
    en_at: str         # preposition for a location: in / on
    hi_at: str         # its postposition: में / पर


@dataclass(frozen=True)
class Verb:
    key: str
    en: tuple[str, str, str, str]      # base, 3rd singular, past, -ing
    stem: str
    perfective: tuple[str, str, str, str]   # m.sg, f.sg, m.pl, f.pl
    subjunctive: tuple[str, str, str, str]  # मैं, तुम, 3rd sg, plural; future = this + गा/गी/गे
    objects: tuple[str, ...] = ()      # transitive iff non-empty
    places: tuple[str, ...] = ()
    place_relation: str = "at"         # at (in/on), from (से), to (bare goal)


PRONOUNS = (
    Pronoun("I", "I", "मैं", "मैंने", 1, False, M),
    Pronoun("you", "you", "तुम", "तुमने", 2, True, M),
    Pronoun("he", "he", "वह", "उसने", 3, False, M),
    Pronoun("she", "she", "वह", "उसने", 3, False, F),
    Pronoun("we", "we", "हम", "हमने", 1, True, M),
    Pronoun("they", "they", "वे", "उन्होंने", 3, True, M),
)

PEOPLE = ("good", "tall")
PERSON_NOUNS = (
    Noun("boy", "boy", "boys", "लड़का", "लड़के", "लड़के", "लड़कों", M, PEOPLE),
    Noun("girl", "girl", "girls", "लड़की", "लड़कियाँ", "लड़की", "लड़कियों", F, PEOPLE),
    Noun("man", "man", "men", "आदमी", "आदमी", "आदमी", "आदमियों", M, PEOPLE),
    Noun("woman", "woman", "women", "औरत", "औरतें", "औरत", "औरतों", F, PEOPLE),
)
THING_NOUNS = (
    Noun("apple", "apple", "apples", "सेब", "सेब", "सेब", "सेबों", M, ("big", "red")),
    Noun("banana", "banana", "bananas", "केला", "केले", "केले", "केलों", M, ("big",)),
    Noun("bread", "bread", None, "रोटी", None, "रोटी", None, F, ("good",)),
    Noun("book", "book", "books", "किताब", "किताबें", "किताब", "किताबों", F,
         ("good", "new", "old")),
    Noun("letter", "letter", "letters", "चिट्ठी", "चिट्ठियाँ", "चिट्ठी", "चिट्ठियों", F,
         ("new", "old")),
    Noun("newspaper", "newspaper", "newspapers", "अख़बार", "अख़बार", "अख़बार", "अख़बारों", M,
         ("new", "old")),
    Noun("water", "water", None, "पानी", None, "पानी", None, M, ()),
    Noun("milk", "milk", None, "दूध", None, "दूध", None, M, ()),
    Noun("tea", "tea", None, "चाय", None, "चाय", None, F, ("good",)),
)
NOUNS = {n.key: n for n in PERSON_NOUNS + THING_NOUNS}

ADJECTIVES = {a.key: a for a in (
    Adjective("good", "good", "अच्छा", "अच्छे", "अच्छी"),
    Adjective("big", "big", "बड़ा", "बड़े", "बड़ी"),
    Adjective("tall", "tall", "लंबा", "लंबे", "लंबी"),
    Adjective("new", "new", "नया", "नए", "नई"),
    Adjective("old", "old", "पुराना", "पुराने", "पुरानी"),
    Adjective("red", "red", "लाल", "लाल", "लाल"),
)}

PLACES = {p.key: p for p in (
    Place("room", "the room", "कमरे", "in", "में"),
    Place("garden", "the garden", "बगीचे", "in", "में"),
    Place("roof", "the roof", "छत", "on", "पर"),
    Place("house", "the house", "घर", "in", "में"),
    Place("market", "the market", "बाज़ार", "in", "में"),
    Place("school", "the school", "स्कूल", "in", "में"),
)}

FOOD = ("apple", "banana", "bread")
DRINKS = ("water", "milk", "tea")
READING = ("book", "letter", "newspaper")
PERSONS = tuple(n.key for n in PERSON_NOUNS)
VERBS = (
    Verb("go", ("go", "goes", "went", "going"), "जा", ("गया", "गई", "गए", "गईं"),
         ("जाऊँ", "जाओ", "जाए", "जाएँ"), places=("house", "market", "school"), place_relation="to"),
    Verb("come", ("come", "comes", "came", "coming"), "आ", ("आया", "आई", "आए", "आईं"),
         ("आऊँ", "आओ", "आए", "आएँ"), places=("house", "market", "school", "garden", "room"),
         place_relation="from"),
    Verb("sleep", ("sleep", "sleeps", "slept", "sleeping"), "सो", ("सोया", "सोई", "सोए", "सोईं"),
         ("सोऊँ", "सोओ", "सोए", "सोएँ"), places=("room", "house", "roof")),
    Verb("sit", ("sit", "sits", "sat", "sitting"), "बैठ", ("बैठा", "बैठी", "बैठे", "बैठीं"),
         ("बैठूँ", "बैठो", "बैठे", "बैठें"), places=("room", "garden", "roof")),
    Verb("eat", ("eat", "eats", "ate", "eating"), "खा", ("खाया", "खाई", "खाए", "खाईं"),
         ("खाऊँ", "खाओ", "खाए", "खाएँ"), objects=FOOD),
    Verb("drink", ("drink", "drinks", "drank", "drinking"), "पी", ("पिया", "पी", "पिए", "पीं"),
         ("पिऊँ", "पिओ", "पिए", "पिएँ"), objects=DRINKS),
    Verb("read", ("read", "reads", "read", "reading"), "पढ़", ("पढ़ा", "पढ़ी", "पढ़े", "पढ़ीं"),
         ("पढ़ूँ", "पढ़ो", "पढ़े", "पढ़ें"), objects=READING),
    Verb("write", ("write", "writes", "wrote", "writing"), "लिख", ("लिखा", "लिखी", "लिखे", "लिखीं"),
         ("लिखूँ", "लिखो", "लिखे", "लिखें"), objects=("letter", "book")),
    Verb("buy", ("buy", "buys", "bought", "buying"), "ख़रीद",
         ("ख़रीदा", "ख़रीदी", "ख़रीदे", "ख़रीदीं"),
         ("ख़रीदूँ", "ख़रीदो", "ख़रीदे", "ख़रीदें"),
         objects=("apple", "banana", "bread", "book", "newspaper", "milk", "tea")),
    Verb("make", ("make", "makes", "made", "making"), "बना", ("बनाया", "बनाई", "बनाए", "बनाईं"),
         ("बनाऊँ", "बनाओ", "बनाए", "बनाएँ"), objects=("tea", "bread")),
    Verb("look", ("look at", "looks at", "looked at", "looking at"), "देख",
         ("देखा", "देखी", "देखे", "देखीं"), ("देखूँ", "देखो", "देखे", "देखें"),
         objects=FOOD + READING + PERSONS),
    Verb("call", ("call", "calls", "called", "calling"), "बुला",
         ("बुलाया", "बुलाई", "बुलाए", "बुलाईं"),
         ("बुलाऊँ", "बुलाओ", "बुलाए", "बुलाएँ"), objects=PERSONS),
)


# -------------------------------------------------------------------------------- noun phrases
@dataclass(frozen=True)
class Phrase:
    """A subject or object noun phrase with everything agreement needs."""
    key: str           # subject key or object lemma, for the held-out triple
    lemma: str | None  # the noun, to avoid "the boy calls the boy"
    en: str
    hi: str            # direct case
    hi_ergative: str   # with ने
    hi_object: str     # as an object: direct, or oblique + को for persons
    person: int
    plural: bool
    gender: str
    adjective: str | None = None

    @property
    def marked(self) -> bool:
        return self.hi_object.endswith(" को")


def _noun_phrases(noun: Noun, key_by_number: bool) -> list[Phrase]:
    """The noun in each number, bare and with each compatible adjective."""
    phrases = []
    for plural in (False, True) if noun.en_pl else (False,):
        en_noun = noun.en_pl if plural else noun.en_sg
        direct, oblique = (noun.hi_pl, noun.obl_pl) if plural else (noun.hi_sg, noun.obl_sg)
        key = f"{noun.key}.{'pl' if plural else 'sg'}" if key_by_number else noun.key
        for adjective in (None, *(ADJECTIVES[a] for a in noun.adjectives)):
            en, hi, obl = f"the {en_noun}", direct, oblique
            if adjective:
                en = f"the {adjective.en} {en_noun}"
                hi = f"{adjective.hindi(noun.gender, plural, False)} {direct}"
                obl = f"{adjective.hindi(noun.gender, plural, True)} {oblique}"
            as_object = f"{obl} को" if noun in PERSON_NOUNS else hi
            phrases.append(Phrase(key, noun.key, en, hi, f"{obl} ने", as_object, 3, plural,
                                  noun.gender, adjective and adjective.key))
    return phrases


def _subjects() -> list[Phrase]:
    out = [Phrase(p.key, None, p.en, p.hi, p.hi_ergative, p.hi, p.person, p.plural, p.gender)
           for p in PRONOUNS]
    for noun in PERSON_NOUNS:
        out += _noun_phrases(noun, key_by_number=True)
    return out


def _place_phrase(verb: Verb, place: Place) -> tuple[str, str]:
    if verb.place_relation == "to":      # a goal of जाना stands bare: वह बाज़ार जाता है
        return f"to {place.en}", place.obl
    if verb.place_relation == "from":
        return f"from {place.en}", f"{place.obl} से"
    return f"{place.en_at} {place.en}", f"{place.obl} {place.hi_at}"


# -------------------------------------------------------------------------------- verb phrases
def _third_singular(subject: Phrase) -> bool:
    return subject.person == 3 and not subject.plural


def _english(subject: Phrase, verb: Verb, tense: str, mood: str, rest: str) -> str:
    base, third, past, ing = verb.en
    third_sg = _third_singular(subject)
    be = "am" if subject.en == "I" else "is" if third_sg else "are"
    auxiliary, lexical, affirmative = {
        HABITUAL: ("does" if third_sg else "do", base, [third if third_sg else base]),
        PROGRESSIVE: (be, ing, [be, ing]),
        PAST: ("did", base, [past]),
        FUTURE: ("will", base, ["will", base]),
    }[tense]
    if mood == QUESTION:
        words = [auxiliary, subject.en, lexical]
    elif mood == NEGATIVE:
        words = [subject.en, auxiliary, "not", lexical]
    else:
        words = [subject.en, *affirmative]
    return " ".join(words + ([rest] if rest else [])) + ("?" if mood == QUESTION else ".")


def _auxiliary(person: int, plural: bool) -> str:
    if person == 2:
        return "हो"
    if plural:
        return "हैं"
    return "हूँ" if person == 1 else "है"


def _hindi_verb(verb: Verb, tense: str, negative: bool, subject: Phrase,
                agree: tuple[str, bool]) -> list[str]:
    """The verb group; `agree` is the (gender, plural) a past participle agrees with."""
    gender, plural, person = subject.gender, subject.plural, subject.person
    masculine = "े" if plural else "ा"
    if tense == HABITUAL:   # the negative drops the auxiliary; then a feminine plural is -तीं
        feminine = "ीं" if negative and plural else "ी"
        words = [verb.stem + "त" + (feminine if gender == F else masculine)]
        if not negative:
            words.append(_auxiliary(person, plural))
    elif tense == PROGRESSIVE:
        words = [verb.stem, "रह" + ("ी" if gender == F else masculine), _auxiliary(person, plural)]
    elif tense == PAST:
        agree_gender, agree_plural = agree
        words = [verb.perfective[2 * agree_plural + (agree_gender == F)]]
    else:
        slot = 1 if person == 2 else 3 if plural else 0 if person == 1 else 2
        marker = "गी" if gender == F else "गे" if plural else "गा"
        words = [verb.subjunctive[slot] + marker]
    return (["नहीं"] if negative else []) + words


def _hindi(subject: Phrase, verb: Verb, tense: str, mood: str, complement: str,
           obj: Phrase | None) -> str:
    ergative = tense == PAST and bool(verb.objects)
    if not ergative:
        agree = (subject.gender, subject.plural)
    elif obj.marked:        # a को object blocks agreement: default masculine singular
        agree = (M, False)
    else:
        agree = (obj.gender, obj.plural)
    words = ["क्या"] if mood == QUESTION else []
    words.append(subject.hi_ergative if ergative else subject.hi)
    if complement:
        words.append(complement)
    words += _hindi_verb(verb, tense, mood == NEGATIVE, subject, agree)
    return unicodedata.normalize("NFC", " ".join(words) + ("?" if mood == QUESTION else "।"))


# -------------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class DemoCorpus:
    train: list[tuple[str, str]]      # (english, hindi)
    test: list[tuple[str, str]]       # held-out combinations


def _complements(subject: Phrase, verb: Verb) -> list[tuple[str | None, str, str, Phrase | None]]:
    """(third element of the triple, English, Hindi, object phrase) for what follows the subject."""
    if verb.objects:
        return [(lemma, o.en, o.hi_object, o) for lemma in verb.objects if lemma != subject.lemma
                for o in _noun_phrases(NOUNS[lemma], key_by_number=False)
                if not (o.adjective and subject.adjective)]  # one adjective per clause at most
    places = [(key, *_place_phrase(verb, PLACES[key]), None) for key in verb.places]
    return [(None, "", "", None)] + places


def _all_pairs() -> list[tuple[str, str, Triple]]:
    """Every sentence of the grammar, in lexicon order, with its (subject, verb, object) triple."""
    out = []
    for subject in _subjects():
        for verb in VERBS:
            for third, en_rest, hi_rest, obj in _complements(subject, verb):
                for tense in (HABITUAL, PROGRESSIVE, PAST, FUTURE):
                    for mood in (AFFIRMATIVE, NEGATIVE, QUESTION):
                        if (tense == HABITUAL and mood == AFFIRMATIVE
                                and verb.en[0] == verb.en[2] and not _third_singular(subject)):
                            continue  # "they read the book." is kept as the past only
                        en = _english(subject, verb, tense, mood, en_rest)
                        hi = _hindi(subject, verb, tense, mood, hi_rest, obj)
                        out.append((en, hi, (subject.key, verb.key, third)))
    return out


def _words(sentence: str) -> list[str]:
    return sentence.rstrip(".?।").split()


@functools.lru_cache(maxsize=1)
def _distinct_pairs() -> tuple[tuple[str, str, Triple], ...]:
    """_all_pairs() without repeats; checks that each English sentence has one translation."""
    rows, hindi_of = [], {}
    for en, hi, triple in _all_pairs():
        if en in hindi_of:
            if hindi_of[en] != hi:
                raise AssertionError(f"ambiguous English sentence: {en!r}")
            continue
        hindi_of[en] = hi
        rows.append((en, hi, triple))
    return tuple(rows)


def _generate_with_triples(seed: int = 0):
    """(train, test) lists of (english, hindi, triple), shuffled with the seed, uncapped."""
    rows = _distinct_pairs()
    triples = list(dict.fromkeys(t for _, _, t in rows))
    rng = random.Random(seed)
    while True:
        held_out = set(rng.sample(triples, round(HELD_OUT_FRACTION * len(triples))))
        train = [r for r in rows if r[2] not in held_out]
        test = [r for r in rows if r[2] in held_out]
        train_words = {w for en, hi, _ in train for w in _words(en) + _words(hi)}
        if all(w in train_words for en, hi, _ in test for w in _words(en) + _words(hi)):
            break
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def generate_demo_corpus(seed: int = 0, max_train_pairs: int | None = None,
                         max_test_pairs: int | None = 1000) -> DemoCorpus:
    """Train pairs, and test pairs whose (subject, verb, object) triple never occurs in train.

    Both splits are shuffled with `seed`; the caps keep the first pairs after the shuffle.
    """
    train, test = _generate_with_triples(seed)
    train_pairs = [(en, hi) for en, hi, _ in train][:max_train_pairs]
    test_pairs = [(en, hi) for en, hi, _ in test][:max_test_pairs]
    return DemoCorpus(train=train_pairs, test=test_pairs)
