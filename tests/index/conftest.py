"""Fixtures for the index tests: 41 hand-checkable article records and a built index.

Records ``a001``..``a016`` are written out by hand with distinctive words; ``a017``..``a040``
are "Health policy roundup" fillers (topic "Health Policy", published 2024, no comment count);
``a014`` is gone and ``a041`` is not an article, so 39 documents are indexed.

Facts the tests rely on (ids are ``a`` + the number; ``cmts`` is the comment count):

===  ==================  ====  =========================================================
id   published (UTC)     cmts  words; topics
===  ==================  ====  =========================================================
001  2025-03-14          12    Valproate dosing (title), epilepsy; Epilepsy, Pharmacology
002  2025-05-02T08:15    40    valproate, pregnancy, registry; Epilepsy
003  2025-07-21          -     valproic acid; Pharmacology
004  2025-02-10          7     Sjögren's (U+2019 apostrophe); author María González; Rheumatology
005  2025-06-30T23:30    25    "drug interactions", warfarin, interaction; Pharmacology
006  2025-06-12          5     drug ... interact (not a phrase); Microbiome
007  2025-10-05          3     flu vaccine; Vaccines
008  2025-04-18          58    measles vaccination; Vaccines
009  2025-09-10T01:30    15    mental health apps, anxiety (given as 09-09T23:30-02:00)
010  2025-08-12          0     anxiety, teenagers; author María González; Mental Health
011  2025-11-01          31    Résumé, immunotherapy, long text ending in survival; Oncology
012  -                   2     vitamin D; Nutrition
013  2025-01-20          19    ketogenic diet, epilepsy; Epilepsy, Nutrition
014  (status gone)             retracted valproate study: never indexed
015  2025-03-03          9     warfarin dosing; Pharmacology
016  2025-05-27          11    Sjogren (no accent), lupus; Rheumatology
017+ 2024-MM-10/11       -     Health policy roundup; Health Policy (2 per month of 2024)
041  (kind topic_page)         never indexed
===  ==================  ====  =========================================================
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from whoosh import index as whoosh_index

from index import apply_changes
from index.schema import build_schema, is_indexable, record_to_document

#: Sjögren's with a typographic apostrophe (U+2019), as scraped pages write it.
SJOGREN_S = "Sj\u00f6gren\u2019s"
HW, MJ, DS = "healthwire.example", "medjournal.example", "dailyscience.example"

_LONG_TEXT = (
    "Immunotherapy trials in lung cancer enrolled patients across many hospitals. "
    "Investigators compared checkpoint inhibitors with chemotherapy and followed patients "
    "for three years, measuring tumour response, side effects and quality of life at every "
    "visit. Several groups also looked at biomarkers that might predict who benefits. "
    "The pooled analysis reported longer survival for patients treated with immunotherapy."
)

# (n, title, summary, text, topics, site, author, published_at, comments)
_HAND_WRITTEN: list[tuple[Any, ...]] = [
    (1, "Valproate dosing in adults with epilepsy", "New guidance on valproate levels.",
     "Clinicians reviewed valproate dosing for adults with focal epilepsy. Monitoring blood "
     "levels remains essential.", ["Epilepsy", "Pharmacology"], HW, "Ana Ruiz", "2025-03-14", 12),
    (2, "Pregnancy registry update", "Registry data on antiseizure medicines.",
     "The registry found that valproate exposure during pregnancy carries higher risks than "
     "lamotrigine.", ["Epilepsy"], MJ, "Tom Becker", "2025-05-02T08:15:00+00:00", 40),
    (3, "Valproic acid and liver enzymes", None,
     "A small study tracked liver enzymes in patients on valproic acid.", ["Pharmacology"], DS,
     None, "2025-07-21", None),
    (4, f"{SJOGREN_S} syndrome: dry eyes and fatigue",
     f"What patients with {SJOGREN_S} syndrome report most.",
     f"Patients with {SJOGREN_S} syndrome often describe dry eyes, dry mouth and fatigue.",
     ["Rheumatology"], HW, "María González", "2025-02-10", 7),
    (5, "Drug interactions to watch", "A pharmacist's list.",
     "Common drug interactions involve warfarin and antibiotics. Checking every interaction "
     "takes time.", ["Pharmacology"], MJ, "Li Wei", "2025-06-30T23:30:00+00:00", 25),
    (6, "Antibiotics and the gut", "How antibiotics change the microbiome.",
     "Researchers studied how antibiotics interact with gut bacteria and which drug classes "
     "matter.", ["Microbiome"], DS, "Ana Ruiz", "2025-06-12", 5),
    (7, "Flu vaccine uptake rises", "More adults got the flu vaccine this autumn.",
     "Pharmacies reported that flu vaccine uptake rose among adults over 65.", ["Vaccines"], DS,
     "Ana Ruiz", "2025-10-05", 3),
    (8, "Measles vaccination in schools", "Schools track vaccination records.",
     "Measles outbreaks led schools to check vaccination records for children.", ["Vaccines"],
     HW, "Tom Becker", "2025-04-18", 58),
    (9, "Mental health apps reviewed", None,
     "Reviewers tested ten mental health apps for anxiety and sleep.", ["Mental Health"], MJ,
     "Li Wei", "2025-09-09T23:30:00-02:00", 15),
    (10, "Sleep and anxiety in teenagers", None, "Teenagers who slept less reported more anxiety.",
     ["Mental Health"], DS, "María González", "2025-08-12", 0),
    (11, "Résumé of oncology trials", "Summary of immunotherapy trials.", _LONG_TEXT,
     ["Oncology"], HW, None, "2025-11-01", 31),
    (12, "Vitamin D and bone health", None, "Vitamin D supplements showed little effect on "
     "fractures.", ["Nutrition"], DS, None, None, 2),
    (13, "Ketogenic diet for children with epilepsy", None,
     "A ketogenic diet reduced seizures in some children with epilepsy.",
     ["Epilepsy", "Nutrition"], MJ, "Ana Ruiz", "2025-01-20", 19),
    (14, "Retracted valproate study", None, "This study on valproate was retracted.",
     ["Epilepsy"], HW, None, "2025-02-01", 1),
    (15, "Warfarin dosing errors", None, "Dosing errors with warfarin remain common in hospitals.",
     ["Pharmacology"], HW, None, "2025-03-03", 9),
    (16, "Lupus and Sjogren overlap", None, "Some patients have both lupus and Sjogren syndrome.",
     ["Rheumatology"], MJ, None, "2025-05-27", 11),
]  # fmt: skip


def article_id(n: int) -> str:
    """Return the hex record id of article ``n`` (``a001``)."""
    return f"a{n:03d}"


def _record(n: int, **fields: Any) -> dict[str, Any]:
    """Return an export-contract article record with defaults for what tests do not vary."""
    published = fields.get("published_at")
    seen = f"{published[:10]}T12:00:00+00:00" if published else "2025-10-20T12:00:00+00:00"
    record: dict[str, Any] = {
        "id": article_id(n),
        "url": f"https://{fields['site']}/articles/{n}",
        "updated_at": None,
        "language": "en",
        "word_count": len((fields.get("text") or "").split()),
        "first_seen_at": seen,
        "last_seen_at": "2025-11-20T12:00:00+00:00",
        "fetched_at": "2025-11-20T12:00:00+00:00",
        "status": "active",
        "kind": "article",
        "schema_version": 1,
    }
    record.update(fields)
    return record


def make_articles() -> list[dict[str, Any]]:
    """Build the 41 records described in the module docstring."""
    keys = ("title", "summary", "text", "topics", "site", "author", "published_at")
    records = [
        _record(row[0], **dict(zip(keys, row[1:8], strict=True)), comment_count=row[8])
        for row in _HAND_WRITTEN
    ]
    records[13]["status"] = "gone"
    for n in range(17, 41):
        month, day = (n - 17) % 12 + 1, 10 + (n - 17) // 12
        records.append(
            _record(
                n,
                title=f"Health policy roundup {n}",
                summary=None,
                text=f"Roundup {n}: hospital staffing, budgets and waiting lists.",
                topics=["Health Policy"],
                site=(HW, MJ, DS)[n % 3],
                author=None,
                published_at=f"2024-{month:02d}-{day:02d}",
                comment_count=None,
                first_seen_at="2025-01-05T12:00:00+00:00",
            )
        )
    records.append(
        _record(41, title="Epilepsy topic page", text="Latest epilepsy articles.", site=HW,
                topics=["Epilepsy"], published_at=None, comment_count=None, kind="topic_page")
    )  # fmt: skip
    return records


@pytest.fixture
def articles() -> list[dict[str, Any]]:
    """A fresh copy of the 41 records, safe to modify."""
    return copy.deepcopy(_ARTICLES)


@pytest.fixture(scope="session")
def search_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of all records, built once per session; tests must only read it."""
    path = tmp_path_factory.mktemp("shared") / "index"
    apply_changes(path, make_articles())
    return path


_ARTICLES = make_articles()


def long_documents(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The indexable articles as whoosh documents, each with 2,000 more words of text drawn
    from 300 (so a term's postings fill several blocks)."""
    documents = [record_to_document(a) for a in articles if is_indexable(a)]
    for n, document in enumerate(documents):
        document["text"] += " ".join(f"word{(n * 7 + j) % 300}" for j in range(2000))
    return documents


def segment_files(
    folder: Path, documents: list[dict[str, Any]], make_writer: Callable[[Any], Any]
) -> tuple[dict[str, bytes], Any]:
    """Write ``documents`` in one segment with ``make_writer(index)`` (uncompounded, so each
    file can be compared); returns the segment's files by kind ("pst", "trm",
    "_title_len.col", ...: what follows the segment's random name) and the writer."""
    folder.mkdir()
    ix = whoosh_index.create_in(str(folder), build_schema())
    writer = make_writer(ix)
    for document in documents:
        writer.add_document(**document)
    writer.commit()
    ix.close()
    files = {p.name.split(".", 1)[1]: p.read_bytes() for p in folder.glob("MAIN_*.*")}
    return files, writer
