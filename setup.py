"""Build of solsa-ext's native core (solsa_ext._C) through CMake.

The metadata lives in pyproject.toml; this file only drives CMake from build_ext, so
`pip install .`, `pip install --no-build-isolation --no-deps .`, `pip install -e .`
and `python setup.py build_ext --inplace` all build solsa_ext/_C*.so. torch is NOT
needed at build time (the core is torch-free; see ARCHITECTURE.md).

Environment knobs (echoed by CMake in its "solsa-ext configuration" block):

  SOLSA_BUILD_CUDA   auto (default) | 0 | 1
                     auto: build the CUDA kernels iff nvcc is found; 1: fail without
                     nvcc; 0: CPU only.
  SOLSA_CUDA_ARCHS   "80;90" (default). Plain numbers become SASS for each and SASS+PTX
                     for the last (CMAKE_CUDA_ARCHITECTURES "80-real;90": A100 and H100
                     native, newer GPUs JIT the sm_90 PTX). CMake spellings ("86-real",
                     "all-major", "native") pass through. "," or " " also separate.
  SOLSA_BUILD_TYPE   Release (default) | Debug | RelWithDebInfo
  SOLSA_MAX_JOBS     parallel compile jobs (default: number of CPUs; MAX_JOBS also read)
  SOLSA_OPENMP       1 (default) | 0: OpenMP for the CPU kernels
  CUDACXX            nvcc to use; otherwise nvcc on PATH, $CUDA_HOME/bin, /usr/local/cuda/bin
  SOLSA_CMAKE_ARGS   extra arguments for the CMake configure step (shell-quoted)

CMake and Ninja come from the `cmake` / `ninja` Python packages when installed (the
build-system requirements), else from PATH.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str, sourcedir: Path = ROOT) -> None:
        super().__init__(name, sources=[])
        self.sourcedir = str(sourcedir)


def _tool(module: str, attr: str, exe: str):
    """Path of `exe` from the pip package `module` (attribute `attr` = its bin dir), else PATH."""
    try:
        mod = __import__(module)
        path = Path(getattr(mod, attr)) / exe
        if path.exists():
            return str(path)
    except Exception:
        pass
    return shutil.which(exe)


def _find_nvcc():
    cand = os.environ.get("CUDACXX")
    if cand:
        return shutil.which(cand) or (cand if Path(cand).is_file() else None)
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and Path(root, "bin", "nvcc").exists():
            return str(Path(root, "bin", "nvcc"))
    return None


def _cuda_mode() -> str:
    raw = os.environ.get("SOLSA_BUILD_CUDA", "auto").strip().lower()
    table = {"auto": "AUTO", "": "AUTO", "1": "ON", "on": "ON", "true": "ON", "yes": "ON",
             "0": "OFF", "off": "OFF", "false": "OFF", "no": "OFF"}
    if raw not in table:
        raise RuntimeError(f"SOLSA_BUILD_CUDA must be auto, 0 or 1, got {raw!r}")
    return table[raw]


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, CMakeExtension):
            return super().build_extension(ext)
        cmake = _tool("cmake", "CMAKE_BIN_DIR", "cmake")
        if not cmake:
            raise RuntimeError("CMake >= 3.24 is required to build solsa-ext (pip install cmake)")
        ninja = _tool("ninja", "BIN_DIR", "ninja")

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_temp = Path(self.build_temp).resolve() / "cmake"
        build_temp.mkdir(parents=True, exist_ok=True)
        build_type = os.environ.get("SOLSA_BUILD_TYPE", "Release")
        jobs = os.environ.get("SOLSA_MAX_JOBS") or os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)

        args = [
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DSOLSA_OUTPUT_DIR={out_dir}",
            f"-DSOLSA_BUILD_CUDA={_cuda_mode()}",
            f"-DSOLSA_CUDA_ARCHS={os.environ.get('SOLSA_CUDA_ARCHS', '80;90')}",
            f"-DSOLSA_OPENMP={'OFF' if os.environ.get('SOLSA_OPENMP', '1') == '0' else 'ON'}",
        ]
        try:
            import pybind11

            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        env = dict(os.environ)
        if _cuda_mode() != "OFF":
            nvcc = _find_nvcc()
            if nvcc:
                # Via CUDACXX (not CMAKE_CUDA_COMPILER) so CMake's check_language(CUDA)
                # still tests it: with auto, a broken toolkit means a CPU-only build.
                env["CUDACXX"] = nvcc
            else:
                env.pop("CUDACXX", None)
        if ninja:
            args += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
        args += shlex.split(os.environ.get("SOLSA_CMAKE_ARGS", ""))

        # A stale cache from another generator or source dir would make CMake fail.
        cache = build_temp / "CMakeCache.txt"
        if cache.exists() and str(ROOT) not in cache.read_text(errors="replace"):
            shutil.rmtree(build_temp)
            build_temp.mkdir(parents=True)

        print(f"solsa-ext: cmake {' '.join(args)}", flush=True)
        subprocess.run([cmake, "-S", ext.sourcedir, "-B", str(build_temp), *args],
                       check=True, env=env)
        subprocess.run([cmake, "--build", str(build_temp), "--config", build_type,
                        "--parallel", jobs], check=True, env=env)


setup(
    ext_modules=[CMakeExtension("solsa_ext._C")],
    cmdclass={"build_ext": CMakeBuild},
)
