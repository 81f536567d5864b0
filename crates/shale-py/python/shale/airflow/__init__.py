"""An Airflow provider for Shale: a hook for a pool, operators for
snapshot, clone, restore, delete, sync, mirror update and traced training
steps, and a sensor for new snapshots (``pip install 'shale-volumes[airflow]'``).

Airflow finds it through the ``apache_airflow_provider`` entry point, so
``airflow providers list`` shows it and the ``shale`` connection type is
known. See :mod:`shale.airflow.hooks` for the connection's fields.
"""

import re
from typing import Any, Dict

from .._native import __version__


def volume_name(text: str) -> str:
    """``text`` made a valid volume name (a Jinja filter for run ids:
    ``exp-{{ run_id | volume_name }}``): each run of other characters
    becomes ``-``, at most 100 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")[:100] or "x"


def get_provider_info() -> Dict[str, Any]:
    """What Airflow's providers manager reads about this provider."""
    return {
        "package-name": "shale-volumes",
        "name": "Shale",
        "description": "Versioned data volumes: snapshots, clones, sync and lineage as pipeline steps.",
        "versions": [__version__],
        "connection-types": [
            {"connection-type": "shale", "hook-class-name": "shale.airflow.hooks.ShaleHook"},
        ],
    }
