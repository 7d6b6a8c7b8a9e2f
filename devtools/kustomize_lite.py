"""Render deploy/k8s like `kubectl kustomize`, offline and without kubectl or kustomize.

CI machines have neither binary, so the manifests stay within a small kustomize subset that is
implemented here: `resources` (files and directories with their own kustomization.yaml),
`namespace`, `labels` (pairs on metadata.labels only), `images` (newName/newTag) and
`patches` holding RFC 6902 JSON patches (add, replace, remove, test) with a kind/name target.
Anything else is refused, so a kustomization that needs real kustomize cannot pass silently.
tests/deploy/test_k8s.py compares this output with `kubectl kustomize` where kubectl exists.

    python -m devtools.kustomize_lite deploy/k8s/overlays/example > rendered.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
)


class KustomizeError(ValueError):
    pass


def _load_documents(path: Path) -> list[Resource]:
    docs = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc:
            raise KustomizeError(f"{path}: every document must be a Kubernetes object")
    return docs


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], op: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def apply_json_patch(doc: Resource, ops: list[dict[str, Any]]) -> None:
    """RFC 6902 add/replace/remove/test, in place; a missing path is an error."""
    for op in ops:
        kind = op.get("op")
        try:
            parent, key = _parent(doc, _pointer(str(op["path"])), str(kind))
            if isinstance(parent, list):
                index = len(parent) if key == "-" else int(key)
                if kind == "add":
                    parent.insert(index, op["value"])
                elif kind == "replace":
                    parent[index] = op["value"]
                elif kind == "remove":
                    del parent[index]
                elif kind == "test":
                    if parent[index] != op["value"]:
                        raise KustomizeError(f"test failed at {op['path']}: {parent[index]!r}")
                else:
                    raise KustomizeError(f"unsupported patch op {kind!r}")
            else:
                if kind in ("replace", "remove", "test") and key not in parent:
                    raise KustomizeError(f"{kind}: no {op['path']}")
                if kind in ("add", "replace"):
                    parent[key] = op["value"]
                elif kind == "remove":
                    del parent[key]
                elif kind == "test":
                    if parent[key] != op["value"]:
                        raise KustomizeError(f"test failed at {op['path']}: {parent[key]!r}")
                else:
                    raise KustomizeError(f"unsupported patch op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            if isinstance(exc, KustomizeError):
                raise
            raise KustomizeError(f"patch {op}: {exc!r}") from None


def _set_images(doc: Resource, images: list[dict[str, str]]) -> None:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        image = str(container.get("image", ""))
        name = image.split("@")[0]
        tail = name.rsplit("/", 1)[-1]
        if ":" in tail:
            name = name[: len(name) - len(tail)] + tail.split(":")[0]
        for rule in images:
            if rule["name"] == name:
                tag = rule.get("newTag", image[len(name) + 1 :] if ":" in image else "")
                new = rule.get("newName", name)
                container["image"] = f"{new}:{tag}" if tag else new


def render(directory: Path) -> list[Resource]:
    """The objects of the kustomization in `directory`, transformed."""
    config = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    unknown = set(config) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    objects: list[Resource] = []
    for entry in config.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else _load_documents(path)
    for patch in config.get("patches", []):
        ops = yaml.safe_load(patch["patch"])
        if not isinstance(ops, list):
            raise KustomizeError(f"{directory}: only JSON 6902 patches (a list of ops)")
        target = patch["target"]
        matched = [
            o
            for o in objects
            if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]
        ]
        if not matched:
            raise KustomizeError(f"{directory}: patch target {target} matches nothing")
        for obj in matched:
            apply_json_patch(obj, ops)
    for obj in objects:
        if "namespace" in config:
            obj["metadata"]["namespace"] = config["namespace"]
        for label in config.get("labels", []):
            if label.get("includeSelectors") or label.get("includeTemplates"):
                raise KustomizeError(f"{directory}: labels on selectors/templates unsupported")
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
        _set_images(obj, config.get("images", []))
    return objects


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m devtools.kustomize_lite DIRECTORY", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(render(Path(args[0])), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
