"""GGUF file -> Hugging Face model folder that vLLM can load, converted once and cached by the file's sha256.

vLLM cannot load the Gemma GGUF directly, but transformers reads it (dequantized) and saves an ordinary
folder. Conversion runs in a subprocess (`python -m agents.gguf_to_hf GGUF OUT`) so the dequantized
weights never stay in the arena's memory; it needs the `gguf`, `accelerate` and `transformers` packages.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from arena.paths import cache_root

READY = "arena-converted.txt"  # written last: a folder without it is an interrupted conversion


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def converted_dir(gguf: Path) -> Path:
    """Where the conversion of this GGUF lives: `<cache>/models/<sha256>`."""
    return cache_root() / "models" / file_sha256(gguf)


def ensure_converted(gguf: Path) -> Path:
    """The Hugging Face folder for `gguf`, converting it first if the cache has none; RuntimeError on failure."""
    if not gguf.is_file():
        raise RuntimeError(f"GGUF file not found: {gguf}")
    target = converted_dir(gguf)
    if (target / READY).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}-", dir=target.parent))
    try:
        done = subprocess.run([sys.executable, "-m", "agents.gguf_to_hf", str(gguf), str(work)],
                              capture_output=True, text=True, env=_child_env())
        if done.returncode != 0:
            raise RuntimeError(f"converting {gguf} to a Hugging Face folder failed:\n{done.stderr[-2000:]}")
        if not (target / READY).is_file():  # another process may have finished the same conversion first
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _child_env() -> dict[str, str]:
    """The environment for the converter: this one, with the project importable."""
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def convert(gguf: Path, out: Path) -> None:
    """Dequantize `gguf` with transformers and save model and tokenizer to `out` (bf16 safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    model.hf_quantizer = None  # the weights are dequantized now: save them as plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / READY).write_text(f"converted from {gguf}\n")


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
