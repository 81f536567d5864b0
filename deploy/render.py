"""Renders the Helm chart in helm/shale-csi with its default values, as
`helm template` would, into kubernetes/shale-csi.yaml (no helm binary is
needed: the templates only substitute `{{ .Values.NAME }}`; any other
template action is refused).

    python3 deploy/render.py          # rewrites kubernetes/shale-csi.yaml
    python3 deploy/render.py --check  # fails if it is out of date
"""

import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE / "helm" / "shale-csi"
OUT = HERE / "kubernetes" / "shale-csi.yaml"
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def value(values, path):
    """The value at a dotted `path` of `values`."""
    node = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f"no value {path!r} in values.yaml")
        node = node[key]
    return str(node)


def render(values=None):
    """Every template, rendered, as one multi-document YAML text."""
    values = values or yaml.safe_load((CHART / "values.yaml").read_text())

    def substitute(m):
        action = m.group(1)
        if not action.startswith(".Values."):
            raise ValueError(f"unsupported template action {{{{ {action} }}}}")
        return value(values, action[len(".Values."):])

    parts = []
    for template in sorted((CHART / "templates").glob("*.yaml")):
        text = ACTION.sub(substitute, template.read_text())
        parts.append(f"# Source: shale-csi/templates/{template.name}\n{text.strip()}\n")
    header = "# Rendered from deploy/helm/shale-csi with its default values by deploy/render.py.\n"
    return header + "---\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else f"{OUT} is out of date: run python3 deploy/render.py")
    OUT.write_text(text)
