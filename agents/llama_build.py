"""Whether the installed llama.cpp is the portable build `make` asks for: `python -m agents.llama_build`.

llama.cpp built with `-march=native` (its default) uses every instruction of the machine that built it; on an
Intel CPU with AMX that code crashes at the first move (and a wheel from pip's cache can come from another
CPU). `make` builds it with GGML_NATIVE=OFF: SSE3 to AVX2, FMA, F16C and BMI2, which any x86-64 CPU since 2013
has. This reads the instruction sets the library was compiled with (llama.cpp's system info; nothing runs) and
exits 1 naming any beyond those.
"""

from __future__ import annotations

import platform
import re
import sys

PORTABLE = {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"}  # what GGML_NATIVE=OFF compiles in on x86-64
NOT_INSTRUCTIONS = {"LLAMAFILE", "OPENMP", "REPACK", "ACCELERATE", "KLEIDIAI"}  # features, not instruction sets


def compiled_features(system_info: str) -> set[str]:
    """The features llama.cpp's system info reports as on ("AVX2 = 1 | AMX_INT8 = 1 | ...")."""
    return {name for name, on in re.findall(r"([A-Z0-9_]+) = (\d+)", system_info) if on != "0"}


def beyond_portable(system_info: str) -> set[str]:
    """The instruction sets compiled in that the portable build leaves out (AVX512, AMX_INT8...)."""
    return compiled_features(system_info) - PORTABLE - NOT_INSTRUCTIONS


def main() -> int:
    """0 when llama.cpp is missing, not on x86-64, or the portable build; 1 (saying why) otherwise."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return 0
    try:
        import llama_cpp
    except ImportError:
        return 0
    extra = beyond_portable(llama_cpp.llama_print_system_info().decode())
    if extra:
        print(f"llama-cpp-python was built for a newer CPU than the portable build ({', '.join(sorted(extra))}): "
              "it can crash on other machines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
