"""The helpers of ScpTensor's January 2026 API (7f8a443) beyond the data model, above the file formats.

=====================  ==============================================================  ====================
module                 what                                                            January path
=====================  ==============================================================  ====================
``csv_npz``            the original's CSV folders and NPZ archives                     ``scptensor.core.io``
``scanpy_h5ad``        one assay's layer as an ``AnnData`` or an ``.h5ad`` file        ``scptensor.core.io``
``sparse_utils``       sparse-matrix helpers                                           same name
``jit_ops``            mask-code helpers, as vectorised numpy                          same name
``matrix_ops``         ``MatrixOps``: mask queries and edits of one matrix             same name
``utils``              name suggestion, PCA, UMAP, the dependency decorator            same name
``reader``             the original's ``reader`` (not implemented there, nor here)     same name
=====================  ==============================================================  ====================

They build on the data model (:mod:`h5scp.core`) and, for AnnData files, on the formats
(:mod:`h5scp.io`); nothing below imports them.  The January paths reach them through the one table
:mod:`h5scp._january_table` (``scptensor.core.load_csv``, ``h5scp.core.load_csv``, ``h5scp.load_csv``),
so they can move with one edit there.
"""
