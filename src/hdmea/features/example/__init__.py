"""The template extractor (``example_feature``): copy it to write your own."""

from hdmea.features.example.example_feature import ExampleFeatureExtractor

__all__ = ["ExampleFeatureExtractor"]
