"""Every file the toolkit writes goes through one atomic, link-safe writer; inputs are bounded.

Writing (:func:`atomic_write`, :func:`atomic_write_bytes`, :func:`atomic_write_text`,
:func:`save_figure`)
    The new content goes to a temporary file created in the destination's folder
    (``tempfile.mkstemp``: ``O_CREAT | O_EXCL``, so it never opens an existing file or link), is
    flushed and ``fsync``-ed, and then ``os.replace``-d onto the destination. Readers therefore see
    the old file or the complete new one, never a partial write; a write that fails (a full disk,
    ``ENOSPC``; a read-only file system; a folder that vanished) removes the temporary file and
    leaves the previous file exactly as it was, and raises :class:`WriteError` (an ``OSError``)
    whose message is one line naming the file. ``rename(2)`` replaces the destination's
    *directory entry*: a symbolic link planted at the destination is replaced by the new file, and
    the file it pointed to (possibly outside the output folder) is never touched. The folder entry
    is ``fsync``-ed too (best effort), so the rename survives a crash.
Checking an output folder before any work (:func:`check_writable_dir`)
    Created if needed, then a temporary file is created and removed in it: results computed for
    minutes are never lost at the end because the folder was read-only.
Reading (:func:`check_input_file`, :func:`read_bytes_capped`)
    Input files (features, labels, sweep specs, result files) are checked with ``os.stat`` before
    they are opened: a directory, a device (``/dev/zero``), a FIFO or a socket is refused by name
    (also behind a symbolic link), and so is a file larger than the caller's limit -- with the size,
    the limit and how to raise it in one line. The bytes read are capped as well, so a file that
    grows while it is read cannot exhaust memory either.

This module is part of the command-line shell (:mod:`selfdistill_cli`): every layer may import
it, and ``theory/`` (which does no I/O) does not.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from pathlib import Path

__all__ = [
    "WriteError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_many",
    "atomic_write_text",
    "check_input_file",
    "check_writable_dir",
    "file_kind",
    "read_bytes_capped",
    "render_figure",
    "save_figure",
]


class WriteError(OSError):
    """A file could not be written; the previous file (if any) is unchanged. One-line message.

    ``str()`` is the message alone (no ``[Errno N]`` prefix); ``errno`` keeps the cause.
    """

    def __str__(self) -> str:
        return str(self.strerror)


def _describe(exc: OSError) -> str:
    """``strerror`` of an ``OSError`` (e.g. 'No space left on device'), else its text."""
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else "") or str(exc)
    return " ".join(str(text).split())


def _file_mode() -> int:
    """Permissions of a new ordinary file under this process's umask (``0o666 & ~umask``).

    ``mkstemp`` creates its file ``0600``; results are ordinary files, readable like any other.
    Linux reports the umask in ``/proc/self/status`` (read without changing it, which would race
    with other threads); elsewhere ``0644``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write) -> Path:
    """Write a file atomically: ``write(fh)`` fills a binary file object, then it replaces ``path``.

    Parameters
    ----------
    path : path-like
        Destination. Its folder must exist. An existing file -- or a symbolic link, which is
        replaced itself and never followed -- is replaced only once the new content is on disk.
    write : callable(file) -> None
        Writes the content to the binary file object it is given.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    WriteError
        The file could not be written (disk full, read-only, no such folder, a directory in the
        way); the previous file is unchanged and no temporary file is left behind.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise WriteError(errno.EINVAL, f"cannot write {str(path)!r}: not a file name")
    folder = path.parent
    if path.is_dir() and not path.is_symlink():
        raise WriteError(errno.EISDIR, f"cannot write {str(path)!r}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot write {str(path)!r}: {_describe(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(
                exc.errno,
                f"cannot write {str(path)!r}: {_describe(exc)} (any previous file is unchanged)",
            ) from None
        raise
    _fsync_dir(folder)
    return path


def atomic_write_many(contents: dict) -> list[Path]:
    """Write several files that belong together (``{path: bytes}``): all or, as far as a file
    system allows, none.

    Every new content is first written, flushed and ``fsync``-ed to its temporary file; only when
    all of them are on disk are they renamed into place. A full disk therefore leaves *every*
    previous file intact (``probe.json`` is never new while ``probe.csv`` is old); only a failure
    between two renames, which need no space, could split the set.

    Raises
    ------
    WriteError
        As :func:`atomic_write`; no temporary file is left behind.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in contents.items():
            path = Path(path)
            staged.append((_stage(path, data), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(exc.errno, f"cannot write: {_describe(exc)}") from None
        raise
    for folder in {path.parent for _, path in staged}:
        _fsync_dir(folder)
    return [path for _, path in staged]


def _stage(path: Path, data: bytes) -> str:
    """The name of a complete, fsync-ed temporary copy of ``data`` next to ``path``."""
    if not path.name or path.name in (".", ".."):
        raise WriteError(errno.EINVAL, f"cannot write {str(path)!r}: not a file name")
    if path.is_dir() and not path.is_symlink():
        raise WriteError(errno.EISDIR, f"cannot write {str(path)!r}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot write {str(path)!r}: {_describe(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise WriteError(
            exc.errno,
            f"cannot write {str(path)!r}: {_describe(exc)} (any previous file is unchanged)",
        ) from None
    return tmp


def atomic_write_bytes(path, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write` of ``text`` (``encoding``; newlines written as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def render_figure(fig, path, **savefig_kw) -> bytes:
    """The bytes of ``fig`` saved as ``path`` would be (format from ``format`` or the suffix)."""
    fmt = savefig_kw.pop("format", None) or Path(path).suffix.lstrip(".").lower() or None
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **savefig_kw)
    return buf.getvalue()


def save_figure(fig, path, **savefig_kw) -> Path:
    """Render a matplotlib figure into memory, then :func:`atomic_write` it to ``path``.

    The format comes from ``savefig_kw['format']`` or the file's suffix (``.png``, ``.pdf``...).
    Rendering first means a figure that fails to render leaves no file at all.
    """
    return atomic_write_bytes(path, render_figure(fig, path, **savefig_kw))


def check_writable_dir(path, option: str = "--out") -> Path:
    """Create folder ``path`` if needed and check that files can be created in it.

    Raises
    ------
    ValueError
        One line naming ``option`` and the problem: an empty name, ``path`` is a file, or it
        cannot be created or written (no such parent, permissions, read-only, full).
    """
    if str(path).strip() == "":
        raise ValueError(f"{option} must name a folder, got an empty string")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {str(out)!r} is a file; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # the real test: can a file be created there?
            pass
    except OSError as exc:
        raise ValueError(f"{option} {str(out)!r} is not writable: {_describe(exc)}") from None
    return out


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, for messages ('a directory', 'a character device'...)."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_input_file(path, what: str, max_bytes: int | None = None, override: str = "") -> int:
    """Check that ``path`` is a readable regular file of at most ``max_bytes``; return its size.

    Follows symbolic links (a link to ``/dev/zero`` is judged as ``/dev/zero``).

    Raises
    ------
    ValueError
        One line: missing, a directory, a device / FIFO / socket, unreadable, or larger than
        ``max_bytes`` (the message gives both sizes and ``override``, how to allow more).
    """
    name = str(path)
    if name.strip() == "":
        raise ValueError(f"{what} must name a file, got an empty string")
    try:
        st = os.stat(name)
    except FileNotFoundError:
        link = " (a broken symbolic link)" if os.path.islink(name) else ""
        raise ValueError(f"{what} {name!r} does not exist{link}: file not found") from None
    except OSError as exc:
        raise ValueError(f"{what} {name!r} cannot be read: {_describe(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        via = " (through a symbolic link)" if os.path.islink(name) else ""
        raise ValueError(
            f"{what} {name!r} is {file_kind(st.st_mode)}{via}, not a regular file; give a file"
        )
    if not os.access(name, os.R_OK):
        raise ValueError(f"{what} {name!r} cannot be read: permission denied")
    if max_bytes is not None and st.st_size > max_bytes:
        how = f"; {override}" if override else ""
        raise ValueError(
            f"{what} {name!r} is {_size(st.st_size)}, above the limit of {_size(max_bytes)}{how}"
        )
    return int(st.st_size)


def read_bytes_capped(path, what: str, max_bytes: int, override: str = "") -> bytes:
    """The bytes of the regular file ``path`` (:func:`check_input_file`), at most ``max_bytes``.

    The read itself is capped too: a file that grows beyond the limit while it is read is refused
    with the same one-line message.
    """
    check_input_file(path, what, max_bytes, override)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be read: {_describe(exc)}") from None
    if len(data) > max_bytes:
        how = f"; {override}" if override else ""
        raise ValueError(
            f"{what} {str(path)!r} is larger than the limit of {_size(max_bytes)} (it grew while "
            f"being read){how}"
        )
    return data


def _size(nbytes: float) -> str:
    """``'2.1 GB'``, ``'512 kB'``, ``'80 bytes'`` (decimal units, as in the memory messages)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= factor:
            return f"{nbytes / factor:.3g} {unit}"
    return f"{int(nbytes)} bytes"
