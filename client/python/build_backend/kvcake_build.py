"""PEP 517 build backend of the kvcake Python client, standard library only.

It builds a pure-Python wheel of the `kvcake` package plus kvcake/_libpath.py, which records
the absolute path of the libkvcake it was built against, so the installed package loads it
without KVCAKE_LIB. That library is, first found:

  1. $KVCAKE_LIB (a libkvcake.so file);
  2. $KVCAKE_BUILD_DIR/lib/libkvcake.so.0 (a CMake build tree);
  3. the library an installed tree's own kvcake/_libpath.py names (CMake writes it on
     `cmake --install`, relative to <prefix>/share/kvcake/python/kvcake);
  4. the checkout's release build tree, <root>/build/release/lib/libkvcake.so.0.

Building fails with a clear message when none exists. Editable installs (pip install -e) put
the source folder on sys.path instead; the package then finds the library at run time.
"""

import base64
import hashlib
import io
import os
import re
import zipfile

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the pyproject's folder
_PACKAGE = "kvcake"
_SONAME = "libkvcake.so.0"


def _project():
    """name, version, summary and requires-python of pyproject.toml's [project]."""
    with open(os.path.join(_HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib
        project = tomllib.loads(text)["project"]
    except ImportError:  # Python < 3.11: the flat `key = "value"` lines are enough
        section = text.split("[project]", 1)[1]
        project = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"', section, re.M))
    return project


def _dist_info(project):
    return f"{project['name']}-{project['version']}.dist-info"


def _metadata(project):
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}", f"Summary: {project.get('description', '')}"]
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    return "\n".join(lines) + "\n"


def _library():
    """The libkvcake the wheel records (see the module docstring). An explicit
    $KVCAKE_LIB or $KVCAKE_BUILD_DIR that has no library is an error, not skipped."""
    for var, path in (("KVCAKE_LIB", os.environ.get("KVCAKE_LIB")),
                      ("KVCAKE_BUILD_DIR", os.environ.get("KVCAKE_BUILD_DIR"))):
        if not path:
            continue
        if var == "KVCAKE_BUILD_DIR":
            path = os.path.join(path, "lib", _SONAME)
        if not os.path.isfile(path):
            raise RuntimeError(f"kvcake: {var} is set but {path} does not exist")
        return os.path.abspath(path)
    tried = []
    installed = os.path.join(_HERE, _PACKAGE, "_libpath.py")
    if os.path.exists(installed):
        scope = {}
        with open(installed, encoding="utf-8") as f:
            exec(f.read(), scope)  # our own one-line file
        tried.append(os.path.join(os.path.dirname(installed), scope["LIBRARY"]))
    tried.append(os.path.join(_HERE, "..", "..", "build", "release", "lib", _SONAME))
    for path in tried:
        if os.path.isfile(path):
            return os.path.abspath(path)
    raise RuntimeError("kvcake: libkvcake not found; build it first (cmake --preset release && "
                       "cmake --build --preset release), or set KVCAKE_BUILD_DIR to a build "
                       "tree or KVCAKE_LIB to the library. Tried: "
                       + ", ".join(os.path.normpath(p) for p in tried))


def _package_files():
    """(path in the wheel, bytes) of the package's modules, _libpath.py left out."""
    files = []
    root = os.path.join(_HERE, _PACKAGE)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not name.endswith(".py") or name == "_libpath.py":
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                files.append((os.path.relpath(path, _HERE).replace(os.sep, "/"), f.read()))
    return files


def _write_wheel(wheel_directory, files, project):
    """Writes the wheel of `files` ((path, bytes), without the .dist-info) and returns its
    name."""
    dist_info = _dist_info(project)
    files = list(files) + [
        (f"{dist_info}/METADATA", _metadata(project).encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: kvcake_build\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/top_level.txt", f"{_PACKAGE}\n".encode()),
    ]
    record = io.StringIO()
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{path},sha256={digest},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    files.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    name = f"{project['name']}-{project['version']}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project = _project()
    dist_info = os.path.join(metadata_directory, _dist_info(project))
    os.makedirs(dist_info, exist_ok=True)
    with open(os.path.join(dist_info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(project))
    return _dist_info(project)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    library = _library()
    libpath = ('"""Where libkvcake is, recorded when this package was built."""\n\n'
               f"LIBRARY = {library!r}\n")
    files = _package_files() + [(f"{_PACKAGE}/_libpath.py", libpath.encode())]
    return _write_wheel(wheel_directory, files, _project())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    pth = (_HERE + "\n").encode()
    return _write_wheel(wheel_directory, [(f"{_PACKAGE}.pth", pth)], _project())
