"""Reads the datasets' DCAT-AP catalogue as linked data with PyLD, with the network forbidden
(the @context must be self-contained), and prints what it says as JSON: per dataset its
titles by language, licence, publisher, distributions (download URL, format, the schema they
conform to), temporal coverage and spatial labels.

Usage: dcat_check.py CATALOG.jsonld
"""
import json
import sys

from pyld import jsonld


def no_network(url, options=None):
    raise RuntimeError(f"the catalogue needed the network to read {url}")


jsonld.set_document_loader(no_network)
doc = json.load(open(sys.argv[1]))
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
graph = jsonld.flatten(doc)
nodes = {n["@id"]: n for n in graph if "@id" in n}


def values(node, prop):
    return node.get(prop, [])


out = {"datasets": []}
for n in graph:
    types = n.get("@type", [])
    if DCAT + "Catalog" in types:
        out["catalog_titles"] = {v.get("@language"): v["@value"] for v in values(n, DCT + "title")}
    if DCAT + "Dataset" not in types:
        continue
    d = {
        "id": values(n, DCT + "identifier")[0]["@value"],
        "titles": {v.get("@language"): v["@value"] for v in values(n, DCT + "title")},
        "descriptions": sorted(v.get("@language") for v in values(n, DCT + "description")),
        "licence": [v["@id"] for v in values(n, DCT + "license")],
        "publisher": [
            l["@value"] for p in values(n, DCT + "publisher")
            for l in nodes[p["@id"]].get("http://xmlns.com/foaf/0.1/name", [])
        ],
        "contact": [c["@id"] for c in values(n, DCAT + "contactPoint")],
        "keywords": [v["@value"] for v in values(n, DCAT + "keyword")],
        "frequency": [v["@id"] for v in values(n, DCT + "accrualPeriodicity")],
        "spatial": [
            l["@value"] for s in values(n, DCT + "spatial")
            for l in nodes[s["@id"]].get("http://www.w3.org/2004/02/skos/core#prefLabel", [])
        ],
        "temporal": [
            {k.split("#")[-1]: v[0]["@value"] for k, v in nodes[t["@id"]].items() if k.startswith(DCAT)}
            for t in values(n, DCT + "temporal")
        ],
        "distributions": [],
    }
    for ref in values(n, DCAT + "distribution"):
        dist = nodes[ref["@id"]]
        d["distributions"].append({
            "download": [v["@id"] for v in values(dist, DCAT + "downloadURL")],
            "format": [v["@id"] for v in values(dist, DCT + "format")],
            "conforms_to": [v["@id"] for v in values(dist, DCT + "conformsTo")],
            "licence": [v["@id"] for v in values(dist, DCT + "license")],
        })
    out["datasets"].append(d)
print(json.dumps(out, ensure_ascii=False))
