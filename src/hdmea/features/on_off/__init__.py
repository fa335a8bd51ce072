"""ON/OFF responses to a light step (``step_up_5s_5i_3x``)."""

from hdmea.features.on_off.step_up import StepUpFeatureExtractor

__all__ = ["StepUpFeatureExtractor"]
