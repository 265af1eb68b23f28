"""Builds the package's binary parts with the repository's CMake build (README "From Python").

``pip install --no-build-isolation ./python`` runs this: CMake configures the repository (the directory
above this one) without its tests, builds the ``python_package`` target (the extension ``_core``, the
CLI and the worker program) and copies them into the package. Compiles through ccache when it is on the
PATH. Two optional environment variables, for builds that want to reuse a build directory:
CBM_PYTHON_CMAKE_BUILD_DIR (where CMake builds; default: under setuptools' build_temp) and
CBM_CMAKE_ARGS (more cmake arguments, shell-quoted). CBM_PYTHON_PREBUILT names a package directory a
CMake build already assembled (``<build>/python/concurrent_bigmodel``): its extension and programs are
copied and nothing is compiled (the install test uses it, so CI does not compile the project twice).
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        prebuilt = os.environ.get("CBM_PYTHON_PREBUILT")
        built = Path(prebuilt).resolve() if prebuilt else self.cmake_build()
        core = next(built.glob("_core.*.so"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(core, target)
        (target.parent / "bin").mkdir(exist_ok=True)
        for program in ("concurrent_bigmodel", "concurrent_bigmodel_worker"):
            shutil.copy2(built / "bin" / program, target.parent / "bin" / program)

    def cmake_build(self) -> Path:
        """Configures and builds the repository; returns the assembled package directory."""
        build_dir = Path(os.environ.get("CBM_PYTHON_CMAKE_BUILD_DIR") or Path(self.build_temp) / "cmake").resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(REPO), "-B", str(build_dir), "-DCBM_BUILD_TESTS=OFF", "-DCBM_PYTHON=ON",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
        if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
            configure += ["-G", "Ninja"]
        if shutil.which("ccache"):
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        extra = shlex.split(os.environ.get("CBM_CMAKE_ARGS", ""))
        if not any(a.startswith("-DCMAKE_BUILD_TYPE") for a in extra):
            configure.append("-DCMAKE_BUILD_TYPE=RelWithDebInfo")
        configure += extra
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "python_package",
                        "-j", str(os.cpu_count() or 1)], check=True)
        return build_dir / "python" / "concurrent_bigmodel"


setup(
    ext_modules=[CMakeExtension("concurrent_bigmodel._core")],
    cmdclass={"build_ext": CMakeBuild},
)
