"""Public kernel wrappers: validate arguments, pick the compiled implementation, call it.

One module per kernel family; each public function validates and allocates,
then calls a private ``_``-prefixed compiled kernel that never validates.
"""
