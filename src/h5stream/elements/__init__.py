"""Element codecs: exact, self-describing storage of values in HDF5.

Public API::

    from h5stream.elements import write_elem, read_elem
    write_elem(group, "obs", frame, compression="gzip", index="cell_id")
    frame = read_elem(group["obs"])

Every element carries ``encoding-type``/``encoding-version`` (the AnnData
on-disk convention, so ``anndata.io.read_elem`` reads frames, arrays, string
arrays and sparse matrices we write).  Kinds the specification lacks use typed
encodings named ``h5stream:<kind>`` (see :mod:`~h5stream.elements.registry`).

=======================================  ====================================
value                                    encoding (module)
=======================================  ====================================
polars DataFrame                         ``dataframe`` 0.2.0 (dataframe)
polars Series                            per dtype (dataframe, temporal, nested)
numpy numeric/bool array, any order      ``array`` 0.2.0 (arrays)
numpy datetime64/timedelta64 array       ``h5stream:numpy-datetime`` (arrays)
numpy string array, list of str/None     ``string-array`` / ``nullable-string-array`` (strings)
scipy CSR/CSC matrix or array            ``csr_matrix`` / ``csc_matrix`` 0.1.0 (sparse)
dict, list, tuple                        ``dict`` 0.1.0 / ``array`` / ``h5stream:sequence`` (mapping)
numpy scalar, bool, int, float, complex  ``numeric-scalar`` 0.2.0 (arrays, scalars)
str / None / bytes                       ``string`` / ``null`` / ``h5stream:bytes`` (scalars)
=======================================  ====================================

Values with no exact encoding raise :class:`~h5stream.errors.EncodingError`;
nothing is ever pickled.  New codecs are added with :func:`register_writer`
and :func:`register_reader`.
"""

from h5stream.elements.registry import (
    ElementSpec,
    RegistrationError,
    load_codecs,
    read_elem,
    read_spec,
    register_reader,
    register_writer,
    write_elem,
)

# Importing the codec modules registers their readers and writers (the registry
# also does it itself before its first dispatch).
load_codecs()

from h5stream.elements.sparse import write_dense_as_csr  # noqa: E402
from h5stream.writer import WriteOptions, write_many  # noqa: E402

__all__ = [
    "ElementSpec",
    "RegistrationError",
    "write_elem",
    "read_elem",
    "read_spec",
    "register_writer",
    "register_reader",
    "write_dense_as_csr",
    "write_many",
    "WriteOptions",
]
