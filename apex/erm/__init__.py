"""Entity Relationship Maps (ERMs): documents rewritten as compact maps of their entities and relations.

Public API (see docs/erm.md):

- `ErmConfig.from_cfg(section)`: the typed config of Hydra group `erm`.
- `build_maps(items, cfg, cache_dir) -> ErmResult`: maps table (doc_id, map_json, text, status) + failures + stats.
- `map_view(corpus, maps)` / `map_view_with_counts`: the corpus with text replaced by the rendered map.
- `size_reduction(plain, mapped, tokenizer)` and `write_reduction_histogram(per_doc, path)`.
- `generate_queries(corpus, cfg, cache_dir) -> QueryResult`: one synthetic query per document, with qrels.
- `EntityMap`, `render_map`: the schema and the renderer.
"""

from apex.erm.client import ErmBackendError
from apex.erm.config import ErmConfig
from apex.erm.pipeline import ErmResult, build_maps
from apex.erm.queries import QueryResult, generate_queries
from apex.erm.render import RENDER_VERSION, render_map
from apex.erm.schema import Attribute, Entity, EntityMap, MapValidationError, Relation
from apex.erm.size import size_reduction, write_reduction_histogram
from apex.erm.view import map_view, map_view_with_counts

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
