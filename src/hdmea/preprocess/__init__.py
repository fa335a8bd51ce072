"""Signal preprocessing at the original pipeline's import path (:mod:`hdmea.preprocess.filtering`)."""
