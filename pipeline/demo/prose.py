"""The demo site's prose: word lists, templates, and the writer that fills them.

``content`` hands this module a seeded ``random.Random`` and gets back template fill-ins and
article paragraphs as ``InlineSpan`` runs (plain text, ``strong``, ``em``, links). Templates use
``str.format`` fields ``drug``, ``drug2``, ``condition``, ``symptom``, ``n``, ``weeks``,
``keyword`` (``Drug``/``Drug2``/``Condition`` capitalized, in titles). Every filled sentence stays
under 30 words, so a paragraph written to a 40-88 word target ends between 40 and 120 words.
"""

# The curly quotes, dashes and accents are the point: they exercise entity decoding and NFC.

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

_SLUG_STOPWORDS = frozenset({"a", "and", "the", "to", "you", "what", "for", "with", "s", "of"})


@dataclass(frozen=True, slots=True)
class InlineSpan:
    """A run of paragraph text: plain (no ``tag``), ``strong``, ``em``, or ``a`` with ``href``."""

    text: str
    tag: str = ""
    href: str = ""


def _split(items: str) -> tuple[str, ...]:
    """A comma-separated list as a tuple (keeps the word lists compact)."""
    return tuple(items.split(", "))


class Theme(NamedTuple):
    """One topic's name, description paragraphs and the vocabulary its articles use."""

    name: str
    description: tuple[str, ...]
    drugs: tuple[str, ...]
    conditions: tuple[str, ...]


THEMES: tuple[Theme, ...] = (
    Theme(
        "Immunomodulation",
        (
            "Immunomodulation is the process of adjusting the immune system’s activity to treat "
            "disease. It is not just about boosting immunity—it is about fine-tuning it, "
            "because too much activity turns the body against itself and too little leaves you "
            "exposed.",
            "The posts here look at how medicines such as methotrexate, leflunomide and "
            "tacrolimus recalibrate T-cells and cytokines, what side effects to watch for, and "
            "why some combinations are risky while others are lifesaving.",
        ),
        _split(
            "methotrexate, leflunomide, valproic acid, azathioprine, tacrolimus, hydroxychloroquine"
        ),
        _split(
            "rheumatoid arthritis, multiple sclerosis, psoriasis, "
            "Sjögren’s syndrome, chronic infection"
        ),
    ),
    Theme(
        "Antidepressants",
        (
            "Antidepressants are medicines that change how the brain handles serotonin, "
            "noradrenaline and dopamine. They take weeks to work, and the first month is often "
            "the hardest part of treatment.",
            "Here you will find practical guides to starting, switching and stopping them, and "
            "to the “discontinuation” symptoms many people are never warned about.",
        ),
        _split("sertraline, fluoxetine, citalopram, venlafaxine, mirtazapine, bupropion"),
        _split(
            "major depression, generalised anxiety, panic disorder, insomnia, postnatal depression"
        ),
    ),
    Theme(
        "Pain Management",
        (
            "Pain management covers everything from a single dose of ibuprofen to long-term "
            "plans for nerve pain. The right approach depends on where the pain comes from and "
            "how long it has lasted.",
        ),
        _split("ibuprofen, naproxen, paracetamol, codeine, tramadol, gabapentin, pregabalin"),
        _split("chronic back pain, migraine, osteoarthritis, neuropathic pain, fibromyalgia"),
    ),
    Theme(
        "Autoimmune Disease",
        (
            "Autoimmune diseases are conditions where the immune system attacks healthy tissue. "
            "Lupus, coeliac disease and Sjögren’s syndrome look very different, yet they share "
            "the same underlying mistake.",
            "These articles explain the treatments—steroids, biologics and older "
            "disease-modifying drugs—and how to live well between flare-ups.",
        ),
        _split("prednisolone, adalimumab, etanercept, sulfasalazine, mycophenolate, rituximab"),
        _split(
            "lupus, coeliac disease, Hashimoto’s thyroiditis, "
            "ulcerative colitis, Sjögren’s syndrome"
        ),
    ),
    Theme(
        "Drug Interactions",
        (
            "Drug interactions happen when one medicine changes how another is absorbed, broken "
            "down or cleared. Some are harmless; others, like warfarin & clarithromycin, can be "
            "dangerous within days.",
            "We cover the combinations pharmacists worry about most, including food, alcohol "
            "and herbal remedies such as St John’s wort.",
        ),
        _split(
            "warfarin, clarithromycin, simvastatin, fluconazole, "
            "digoxin, amiodarone, St John’s wort"
        ),
        _split("bleeding risk, QT prolongation, serotonin syndrome, liver injury, kidney strain"),
    ),
    Theme(
        "Heart Health",
        (
            "Heart health is about more than cholesterol numbers. Blood pressure, rhythm and "
            "the strength of the heart muscle all matter, and most people end up on more than "
            "one medicine.",
        ),
        _split("atorvastatin, ramipril, amlodipine, bisoprolol, clopidogrel, apixaban"),
        _split("high blood pressure, atrial fibrillation, heart failure, angina, high cholesterol"),
    ),
    Theme(
        "Antibiotics",
        (
            "Antibiotics treat bacterial infections, not viral ones, and every course shapes "
            "the bacteria that survive it. Finishing the course, or knowing when a shorter one "
            "is enough, matters.",
            "Read about common prescriptions, allergies, and the side effects that mean you "
            "should call your GP.",
        ),
        _split(
            "amoxicillin, doxycycline, ciprofloxacin, azithromycin, nitrofurantoin, co-amoxiclav"
        ),
        _split("urinary tract infection, pneumonia, cellulitis, Lyme disease, sinusitis"),
    ),
    Theme(
        "Diabetes Care",
        (
            "Diabetes care means balancing blood sugar day to day while protecting the heart, "
            "kidneys, eyes and nerves over decades. Medicines are only one part of that plan.",
        ),
        _split("metformin, insulin glargine, gliclazide, empagliflozin, sitagliptin, semaglutide"),
        _split(
            "type 2 diabetes, hypoglycaemia, diabetic neuropathy, "
            "insulin resistance, gestational diabetes"
        ),
    ),
    Theme(
        "Allergy & Asthma",
        (
            "Allergy & asthma treatments calm an immune system that overreacts to pollen, dust "
            "or food. Inhalers and antihistamines work best when used the right way.",
        ),
        _split("cetirizine, loratadine, salbutamol, montelukast, beclometasone, fexofenadine"),
        _split("hay fever, asthma, eczema, urticaria, food allergy"),
    ),
    Theme(
        "Sleep Medicine",
        (
            "Sleep medicine looks at why nights go wrong and what helps. Sleeping tablets have "
            "a place, but habits and timing usually matter more.",
        ),
        _split("zopiclone, melatonin, temazepam, promethazine, zolpidem"),
        _split("insomnia, sleep apnoea, restless legs, jet lag, shift-work disorder"),
    ),
)

TITLES: tuple[str, ...] = (
    "{Drug} and {Condition}: What You Need to Know",
    "How {Drug} Affects {Condition} — A Practical Guide",
    "{Drug} vs {Drug2}: Which Works Better for {Condition}?",
    "Switching from {Drug} to {Drug2}: What to Expect",
    "{Drug} Side Effects: What’s Normal & What’s Not",
    "Can You Take {Drug} with {Drug2}?",
    "Living with {Condition}: Where {Drug} Fits In",
    "The “Naïve” Patient’s Guide to {Drug}",
    "{Drug} Dosing & Timing for {Condition}",
    "Why Doctors Prescribe {Drug} for {Condition}",
    "{Condition} Flare-Ups: Does {Drug} Help?",
    "Coffee, Café Culture & {Drug}: Does Caffeine Matter?",
    "Stopping {Drug} Safely — Tapering Tips for {Condition}",
)

SUMMARIES: tuple[str, ...] = (
    "{Drug} does more than treat {condition}—it can change how your body handles other "
    "medicines, so learn what to watch for and when to call your GP.",
    "A plain-English look at how {drug} works in {condition}, which side effects are common, "
    "and why monitoring matters for safer long-term use.",
    "What the evidence says about {drug} and {drug2}, who benefits most, and the questions to "
    "ask before you switch.",
    "Practical tips for taking {drug} with {condition}: timing, food & drink, and the warning "
    "signs that need a doctor.",
    "Why some people with {condition} do well on {drug} while others struggle—and how to tell "
    "which group you are in.",
)

SENTENCES: tuple[str, ...] = (
    "{drug} is usually started at a low dose and increased slowly over {weeks} weeks.",
    "Most people with {condition} notice a difference within the first month, although full "
    "benefit can take longer.",
    "Common side effects of {drug} include {symptom}; most settle as the body adjusts.",
    "Your doctor may check blood tests every few weeks while the dose of {drug} is being changed.",
    "Taking {drug} at the same time each day makes it easier to remember and keeps levels steady.",
    "Combining {drug} with {drug2} is sometimes necessary, but it calls for closer monitoring.",
    "In one review of {n} patients, about a third reported {symptom} during the first weeks.",
    "Patients often describe the first weeks on {drug} as “a bit foggy”—a feeling that usually "
    "passes.",
    "Treatment-naïve patients, who have never taken a similar medicine, tend to notice side "
    "effects sooner.",
    "People with Sjögren’s syndrome may find that {drug} worsens dry mouth, so sipping water "
    "helps.",
    "A morning coffee at the café is usually fine, but strong caffeine can make {symptom} worse.",
    "Ask your pharmacist about food & drink restrictions before the first dose of {drug}.",
    "Never stop {drug} suddenly without advice, because symptoms of {condition} can return "
    "quickly.",
    "Alcohol can increase {symptom} and may make {drug} less effective for some people.",
    "Keep a simple diary of doses and symptoms; it makes the next appointment far more useful.",
    "Grapefruit juice blocks the liver enzymes that break down several medicines, including "
    "some used alongside {drug}.",
    "If you miss a dose, take it when you remember unless the next one is almost due.",
    "Older adults may need a smaller dose of {drug} because the kidneys clear it more slowly.",
    "Doctors weigh the risk of {symptom} against the benefit of controlling {condition}.",
    "It’s worth asking whether {drug2} would suit you better if side effects persist.",
    "Pregnancy changes how {drug} is handled, so plans should be reviewed early with your midwife.",
    "Guidelines suggest reviewing treatment for {condition} at least once a year.",
    "Some patients switch from {drug} to {drug2} after {weeks} weeks when the response is partial.",
    "Generic versions of {drug} contain the same active ingredient and work the same way.",
    "Report any rash, fever or unusual bruising straight away—these are rare but important.",
)

KEYWORD_SENTENCES: tuple[str, ...] = (
    "In the {keyword} cohort, researchers followed {n} adults taking {drug} for {weeks} weeks.",
    "The {keyword} study compared {drug} with {drug2} in people living with {condition}.",
    "Clinicians at the {keyword} clinic published a short audit of {drug} prescribing last year.",
)

LINK_SENTENCE = "For a broader overview, see our guide to {link}."

SYMPTOMS: tuple[str, ...] = _split(
    "nausea, headaches, dizziness, fatigue, a dry mouth, stomach upset, insomnia, "
    "muscle aches, vivid dreams, low mood"
)

SYLLABLES_START: tuple[str, ...] = _split(
    "Bal, Cor, Dun, Fen, Gar, Hol, Kes, Lor, Mar, Nor, Pel, Ros, Tal, Vey, Wyn, Yar"
)
SYLLABLES_END: tuple[str, ...] = _split(
    "brook, cairn, dale, fell, garth, holme, kirk, leigh, mere, ness, rigg, stow, thwaite, "
    "wick, worth, yard"
)
SYLLABLES_EXTRA: tuple[str, ...] = _split("ax, el, in, or, um, yx")

AUTHORS: tuple[str, ...] = _split(
    "Jane Okafor, Rahul Mehta, Siobhán Kelly, Tom Reyes, Lena Fischer, Marcus Webb, "
    "Hannah Liu, Owen Price"
)

READERS: tuple[str, ...] = _split(
    "Priya S., Dave, Zoë Martin, Carol Hughes, Ben T., Amira, Gareth Lloyd, Mike O’Neill, "
    "Ruth, Sam K."
)

COMMENTS: tuple[str, ...] = (
    "This helped me understand why my GP switched me to {drug}. Thank you!",
    "I had the same {symptom} in the first fortnight — it did settle down eventually.",
    "Clear & practical. Printing this out for my mum’s next appointment.",
    "Wish I’d read this before starting {drug}; nobody mentioned the interactions.",
    "Does anyone know if this applies to the slow-release version too?",
)

ABOUT: tuple[str, ...] = (
    "MedGuide Demo is a made-up health and medication blog bundled with crawldex so that the "
    "crawler, the extractor and the search index can be tried without touching the internet.",
    "Nothing here is medical advice. Every article is generated from templates—names, dates & "
    "comment counts included.",
)


def slugify(text: str, *, max_words: int = 0) -> str:
    """A URL slug: ASCII-folded, lower case, words joined by ``-`` (stop words dropped if capped).

    Args:
        text: the title or name.
        max_words: keep at most this many words after dropping stop words (0: keep all words).

    Returns:
        The slug, e.g. ``valproic-acid-immune-system``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    if max_words:
        words = [w for w in words if w not in _SLUG_STOPWORDS][:max_words]
    return "-".join(words)


def capitalize(text: str) -> str:
    """``text`` with its first letter upper-cased."""
    return text[:1].upper() + text[1:]


def _title_case(text: str) -> str:
    """Each space-separated word capitalized (unlike ``str.title``, which gives ``John’S``)."""
    return " ".join(capitalize(word) for word in text.split(" "))


def make_keyword(index: int) -> str:
    """The made-up word of article ``index``, unique per index (``Kesmere``, ``Balbrookax``).

    Args:
        index: the article's generation index.

    Returns:
        A capitalized word that appears in no template, title or other keyword.
    """
    word = SYLLABLES_START[index % len(SYLLABLES_START)]
    word += SYLLABLES_END[(index // len(SYLLABLES_START)) % len(SYLLABLES_END)]
    rest = index // (len(SYLLABLES_START) * len(SYLLABLES_END))
    while rest:
        rest, digit = divmod(rest - 1, len(SYLLABLES_EXTRA))
        word += SYLLABLES_EXTRA[digit]
    return word


def pick_words(rng: random.Random, themes: list[Theme]) -> dict[str, str]:
    """The fill-ins of one article's templates, drawn from its topics' vocabulary.

    Args:
        rng: the site's random generator.
        themes: the article's themes, primary first (a second one supplies ``drug2``).

    Returns:
        Template field -> text.
    """
    drug, alt = rng.sample(themes[0].drugs, 2)
    drug2 = rng.choice(themes[1].drugs) if len(themes) > 1 else alt
    condition = rng.choice(themes[0].conditions)
    return {
        "drug": drug,
        "drug2": drug2,
        "condition": condition,
        "Drug": _title_case(drug),
        "Drug2": _title_case(drug2),
        "Condition": _title_case(condition),
        "symptom": rng.choice(SYMPTOMS),
        "n": f"{rng.randrange(120, 4000, 10):,}",
        "weeks": str(rng.randint(2, 12)),
    }


def write_paragraphs(
    rng: random.Random, words: dict[str, str], keyword: str, related: list[str]
) -> tuple[tuple[InlineSpan, ...], ...]:
    """4-9 paragraphs of 40-120 words; one holds ``keyword``, one may link a related topic.

    Args:
        rng: the site's random generator.
        words: the article's template fill-ins (``pick_words``).
        keyword: the article's made-up word, placed in exactly one sentence.
        related: names of the article's other topics; one may get a link to its page.

    Returns:
        One tuple of spans per paragraph.
    """
    count = rng.randint(4, 9)
    keyword_at, link_at = rng.randrange(count), rng.randrange(count)
    deck: list[str] = []
    paragraphs = []
    for index in range(count):
        sentences: list[tuple[InlineSpan, ...]] = []
        if index == keyword_at:
            template = rng.choice(KEYWORD_SENTENCES)
            sentences.append((InlineSpan(template.format(keyword=keyword, **words)),))
        if index == link_at and related:
            sentences.append(_link_sentence(rng.choice(related)))
        target = rng.randint(40, 88)
        while _count_words(sentences) < target:
            if not deck:
                deck = rng.sample(SENTENCES, len(SENTENCES))
            text = capitalize(deck.pop().format(**words))
            tag = rng.choice(("strong", "em", "", "", "", "", "", ""))
            sentences.append(_emphasise(text, words["drug"], tag))
        rng.shuffle(sentences)
        paragraphs.append(_join(sentences))
    return tuple(paragraphs)


def _count_words(sentences: list[tuple[InlineSpan, ...]]) -> int:
    """Word count of some sentences."""
    return sum(len("".join(s.text for s in spans).split()) for spans in sentences)


def _emphasise(text: str, term: str, tag: str) -> tuple[InlineSpan, ...]:
    """``text`` with the first ``term`` wrapped in ``tag`` (plain when no tag or no match)."""
    before, found, after = text.partition(term)
    if not tag or not found:
        return (InlineSpan(text),)
    return (InlineSpan(before), InlineSpan(found, tag), InlineSpan(after))


def _link_sentence(topic: str) -> tuple[InlineSpan, ...]:
    """The "see our guide to <topic>" sentence, linking the topic's page."""
    before, _, after = LINK_SENTENCE.partition("{link}")
    href = f"/topics/{slugify(topic)}/"
    return (InlineSpan(before), InlineSpan(topic, "a", href), InlineSpan(after))


def _join(sentences: list[tuple[InlineSpan, ...]]) -> tuple[InlineSpan, ...]:
    """Sentences joined by spaces, adjacent plain spans merged, empty spans dropped."""
    spans: list[InlineSpan] = []
    for i, sentence in enumerate(sentences):
        for span in ((InlineSpan(" "),) if i else ()) + sentence:
            if not span.text:
                continue
            if spans and not span.tag and not spans[-1].tag:
                spans[-1] = InlineSpan(spans[-1].text + span.text)
            else:
                spans.append(span)
    return tuple(spans)
