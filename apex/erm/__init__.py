"""Entity Relationship Maps (ERMs): documents rewritten as compact maps of their entities and relations.

Public API (see docs/erm.md):

- `ErmConfig.from_cfg(section)`: the typed config of Hydra group `erm`.
- `build_maps(items, cfg, cache_dir) -> ErmResult`: maps table (doc_id, map_json, text, status) + failures + stats.
- `map_view(corpus, maps)` / `map_view_with_counts`: the corpus with text replaced by the rendered map.
- `size_reduction(plain, mapped, tokenizer)` and `write_reduction_histogram(per_doc, path)`.
- `generate_queries(corpus, cfg, cache_dir) -> QueryResult`: one synthetic query per document, with qrels.
- `EntityMap`, `render_map`: the schema and the renderer.
"""

from apex.core.lazy import lazy_exports

_EXPORTS = {
    "RENDER_VERSION": "render",
    "Attribute": "schema",
    "Entity": "schema",
    "EntityMap": "schema",
    "ErmBackendError": "client",
    "ErmConfig": "config",
    "ErmResult": "pipeline",
    "MapValidationError": "schema",
    "QueryResult": "queries",
    "Relation": "schema",
    "build_maps": "pipeline",
    "generate_queries": "queries",
    "map_view": "view",
    "map_view_with_counts": "view",
    "render_map": "render",
    "size_reduction": "size",
    "write_reduction_histogram": "size",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "RENDER_VERSION",
    "Attribute",
    "Entity",
    "EntityMap",
    "ErmBackendError",
    "ErmConfig",
    "ErmResult",
    "MapValidationError",
    "QueryResult",
    "Relation",
    "build_maps",
    "generate_queries",
    "map_view",
    "map_view_with_counts",
    "render_map",
    "size_reduction",
    "write_reduction_histogram",
]
