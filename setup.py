"""Build the compiled core; all metadata lives in pyproject.toml."""
import os
import shutil
import subprocess
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def openmp_flags():
    """``-fopenmp`` if the C compiler builds and links an OpenMP program, else nothing
    (the parallel loops then run on one thread)."""
    cc = os.environ.get("CC", "cc").split()[0]
    if shutil.which(cc) is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as fh:
            fh.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        ok = subprocess.run([cc, "-fopenmp", src, "-o", os.path.join(tmp, "omp")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    return ["-fopenmp"] if ok else []


def extension(name, openmp=False):
    flags = openmp_flags() if openmp else []
    return Extension(
        "hlmext._kernels." + name,
        ["hlmext/_kernels/%s.pyx" % name],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"] + flags,
        extra_link_args=flags,
    )


class ParallelBuildExt(build_ext):
    """Compile the extensions on every core unless ``-j`` says otherwise (pip passes no ``-j``)."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1


extensions = [extension("core"), extension("row_order"), extension("gradient"), extension("glmm", openmp=True),
              extension("glmm_nested"), extension("nested_aghq", openmp=True), extension("many", openmp=True),
              extension("residuals"), extension("ordinal", openmp=True), extension("crossed"), extension("diagonal")]

setup(ext_modules=cythonize(extensions, language_level=3), cmdclass={"build_ext": ParallelBuildExt})
