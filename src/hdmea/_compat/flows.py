"""Named flows of the original pipeline: load a recording, then extract a flow's feature sets.

A flow is ``flows/<name>.json`` in the original's format (see
:mod:`hdmea.pipeline.config`); ``set6a_full`` ships with hdmea.  ``run_flow``
calls the same steps as every other style (:func:`~hdmea.steps.load.load_recording`
with ``config=`` the flow's defaults, then ``extract_features``); a feature whose
inputs the recording lacks (section times, say) is reported in the extraction
result, not raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from hdmea.errors import ConfigError
from hdmea._compat.flow_files import load_flow_config
from hdmea.stimulus_files import config_search_dirs
from hdmea.steps.load import LoadResult, load_recording

__all__ = ["FlowResult", "run_flow", "list_available_flows", "get_flow_info"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())



@dataclasses.dataclass
class FlowResult:
    """What :func:`hdmea._compat.flows.run_flow` did: the load's and the extraction's results."""

    hdf5_path: Path
    load_result: LoadResult | None = None
    extraction_result: object | None = None
    success: bool = False


def run_flow(
    flow_name: str,
    cmcr_path: str | os.PathLike | None = None,
    cmtr_path: str | os.PathLike | None = None,
    dataset_id: str | None = None,
    *,
    output_dir: str | os.PathLike = "artifacts",
    config_dir: str | os.PathLike | None = None,
    force_load: bool = False,
    force_extract: bool = False,
) -> FlowResult:
    """Run the flow ``flow_name``: its load stage into ``<output_dir>/<dataset_id>.h5``, then its features.

    ``success`` is False when loading did not complete or a feature failed.
    With the load stage disabled the recording must exist already (``dataset_id`` names it).
    """
    from hdmea.steps.features import extract_features

    flow = load_flow_config(flow_name, config_dir)
    features = flow.get_feature_sets()
    logger.info("flow %s: %d feature sets", flow.name, len(features))
    load_stage = flow.stages.get("load")
    load_result = None
    if load_stage is None or load_stage.enabled:
        load_result = load_recording(cmcr_path=cmcr_path, cmtr_path=cmtr_path, dataset_id=dataset_id,
                                     output_dir=output_dir, force=force_load, config=dict(flow.defaults))
        hdf5_path = load_result.hdf5_path
    elif dataset_id:
        hdf5_path = Path(output_dir) / f"{dataset_id}.h5"
    else:
        raise ConfigError(f"flow {flow.name!r} does not load a recording, so dataset_id must name one in {output_dir}")
    extraction = None
    if features:
        extraction = extract_features(hdf5_path=hdf5_path, features=features, force=force_extract,
                                      config_overrides=dict(flow.defaults))
    success = bool(load_result is None or load_result.stage1_completed)
    if extraction is not None and list(getattr(extraction, "features_failed", []) or []):
        success = False
    logger.info("flow %s finished: success=%s", flow.name, success)
    return FlowResult(hdf5_path=Path(hdf5_path), load_result=load_result, extraction_result=extraction,
                      success=success)


def list_available_flows(config_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the flows in ``config_dir`` (default ``./config``) and of those shipped with hdmea, sorted."""
    names = set()
    for folder in config_search_dirs(config_dir):
        names.update(p.stem for p in (Path(folder) / "flows").glob("*.json"))
    return sorted(names)


def get_flow_info(flow_name: str, config_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"name", "description", "version", "feature_sets", "stages"}`` of a flow."""
    flow = load_flow_config(flow_name, config_dir)
    return {"name": flow.name, "description": flow.description, "version": flow.version,
            "feature_sets": flow.get_feature_sets(), "stages": list(flow.stages)}
