# SPDX-License-Identifier: MIT
"""Finds (or generates) the gRPC stubs of quarry.proto and health.proto.

Nothing generated is committed. The stubs come from, in order:

1. modules already importable (``quarry_pb2`` etc. on ``sys.path``, as the
   build sets up for the tests: ``PYTHONPATH=clients/python:build/python``);
2. the directory named by ``$QUARRY_PYTHON_GEN``;
3. a ``build*/python`` directory of the source tree this package lives in
   (CMake generates the stubs there);
4. generation on first use with ``protoc`` and ``grpc_python_plugin``
   (Debian: protobuf-compiler, protobuf-compiler-grpc) into
   ``$XDG_CACHE_HOME/quarry`` (default ``~/.cache/quarry``), keyed by a hash
   of the .proto files.

The modules are generated with the proto's own folder as the include path so
they are top-level ``quarry_pb2`` / ``health_pb2``: a ``quarry.v1`` or
``grpc.health.v1`` module path would shadow this package and the ``grpc``
package.
"""
import glob
import hashlib
import importlib
import os
import shutil
import subprocess
import sys

_NAMES = ("quarry_pb2", "quarry_pb2_grpc", "health_pb2", "health_pb2_grpc")
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.abspath(os.path.join(_HERE, "..", "..", ".."))
_PROTO = os.path.join(_ROOT, "rpc", "proto", "quarry", "v1", "quarry.proto")
_HEALTH = "/usr/share/grpc-proto/grpc/health/v1/health.proto"


def _try_import():
    try:
        return tuple(importlib.import_module(n) for n in _NAMES)
    except ImportError:
        for n in _NAMES:
            sys.modules.pop(n, None)
        return None


def _with_path(path):
    if not path or not os.path.exists(os.path.join(path, "quarry_pb2.py")):
        return None
    sys.path.insert(0, path)
    mods = _try_import()
    if mods is None:
        sys.path.remove(path)
    return mods


def _generate():
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if not (protoc and plugin and os.path.exists(_PROTO) and os.path.exists(_HEALTH)):
        return None
    digest = hashlib.sha256()
    for p in (_PROTO, _HEALTH):
        with open(p, "rb") as f:
            digest.update(f.read())
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out = os.path.join(cache, "quarry", "stubs-" + digest.hexdigest()[:16])
    if not os.path.exists(os.path.join(out, "health_pb2_grpc.py")):
        tmp = out + ".tmp%d" % os.getpid()
        os.makedirs(tmp, exist_ok=True)
        for proto in (_PROTO, _HEALTH):
            subprocess.run([protoc, "--python_out=" + tmp, "--grpc_python_out=" + tmp,
                            "--plugin=protoc-gen-grpc_python=" + plugin,
                            "-I" + os.path.dirname(proto), proto], check=True)
        try:
            os.rename(tmp, out)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return _with_path(out)


def load():
    """Returns the modules (quarry_pb2, quarry_pb2_grpc, health_pb2, health_pb2_grpc)."""
    mods = _try_import() or _with_path(os.environ.get("QUARRY_PYTHON_GEN"))
    if mods is None:
        for d in sorted(glob.glob(os.path.join(_ROOT, "build*", "python"))):
            mods = _with_path(d)
            if mods:
                break
    if mods is None:
        mods = _generate()
    if mods is None:
        raise ImportError("quarry: no gRPC stubs found; build the project (cmake) or install "
                          "protobuf-compiler and protobuf-compiler-grpc so they can be generated")
    return mods
