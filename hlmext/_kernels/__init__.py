"""The compiled kernels (Cython) and their plain-NumPy twin; they import nothing from hlmext."""
