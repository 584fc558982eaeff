"""The one atomic, link-safe writer and the bounded readers (issue 21): fault injection on a full
disk (a real tmpfs where the platform allows mounting one, and ENOSPC injected in-process), a
planted symbolic link, devices and endless inputs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from selfdistill_cli import files
from selfdistill_cli.files import (
    WriteError,
    atomic_write_bytes,
    atomic_write_text,
    check_input_file,
    check_writable_dir,
    read_bytes_capped,
    save_figure,
)


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_text(path, '{"x": 1}\n')
    atomic_write_text(path, '{"x": 2}\n')
    assert path.read_text() == '{"x": 2}\n' and _no_temporaries(tmp_path)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_planted_symlink_is_replaced_never_followed(tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "probe.json"
    link.symlink_to(outside)
    atomic_write_text(link, "new")
    assert outside.read_text() == "precious"  # the target outside --out is untouched
    assert not link.is_symlink() and link.read_text() == "new"


def test_dangling_symlink_and_link_to_a_directory_are_replaced(tmp_path):
    (tmp_path / "d").mkdir()
    for target in (tmp_path / "missing", tmp_path / "d"):
        link = tmp_path / f"link-{target.name}"
        link.symlink_to(target)
        atomic_write_bytes(link, b"x")
        assert link.read_bytes() == b"x" and not link.is_symlink()
    assert (tmp_path / "d").is_dir()


def test_a_directory_in_the_way_is_one_line(tmp_path):
    (tmp_path / "x.csv").mkdir()
    with pytest.raises(WriteError) as exc:
        atomic_write_text(tmp_path / "x.csv", "a")
    assert "is a directory" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, where):
    """ENOSPC injected in-process at each step: the old file is intact, no temporary is left, and
    the error is one line naming the file."""
    path = tmp_path / "probe.json"
    atomic_write_text(path, "old content")

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "write":

        def write(fh):
            fh.write(b"partial")
            enospc()

        writer = write
    else:
        monkeypatch.setattr(files.os, where, enospc)

        def writer(fh):
            fh.write(b"new content")

    with pytest.raises(WriteError) as exc:
        files.atomic_write(path, writer)
    monkeypatch.undo()
    msg = str(exc.value)
    assert "No space left on device" in msg and "probe.json" in msg and "\n" not in msg
    assert exc.value.errno == errno.ENOSPC
    assert path.read_text() == "old content" and _no_temporaries(tmp_path)


def test_full_disk_on_a_real_tmpfs_keeps_the_previous_file(small_tmpfs):
    path = small_tmpfs / "results.csv"
    atomic_write_text(path, "seed,acc\n0,0.5\n")
    with pytest.raises(WriteError) as exc:
        atomic_write_bytes(path, b"x" * 200_000)  # more than the whole file system
    assert "No space left on device" in str(exc.value)
    assert path.read_text() == "seed,acc\n0,0.5\n" and _no_temporaries(small_tmpfs)


def test_save_figure_renders_then_writes_atomically(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = save_figure(fig, tmp_path / "f.png", dpi=50)
    pdf = save_figure(fig, tmp_path / "f.pdf", metadata={"CreationDate": None})
    plt.close(fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    assert _no_temporaries(tmp_path)


def test_check_writable_dir(tmp_path):
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_writable_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="empty string"):
        check_writable_dir("", "--out")
    with pytest.raises(ValueError, match="not writable"):
        check_writable_dir("/proc/selfdistill-cannot-exist", "--gallery")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_and_special_inputs_are_refused_before_reading(tmp_path):
    link = tmp_path / "features.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="character device .through a symbolic link."):
        read_bytes_capped(link, "features file", 1000)
    with pytest.raises(ValueError, match="character device"):
        check_input_file("/dev/zero", "spec file")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would block for ever
    with pytest.raises(ValueError, match="named pipe"):
        check_input_file(fifo, "spec file")
    with pytest.raises(ValueError, match="is a directory"):
        check_input_file(tmp_path, "labels file")
    with pytest.raises(ValueError, match="does not exist"):
        check_input_file(tmp_path / "nope", "labels file")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(ValueError, match="broken symbolic link"):
        check_input_file(dangling, "labels file")


def test_size_cap_names_both_sizes_and_the_override(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 5000)
    with pytest.raises(ValueError) as exc:
        read_bytes_capped(big, "spec file", 1000, "split the spec")
    msg = str(exc.value)
    assert "5 kB" in msg and "1 kB" in msg and "split the spec" in msg
    assert read_bytes_capped(big, "spec file", 5000) == b"#" * 5000


def test_files_written_together_stay_together_on_a_full_disk(tmp_path, monkeypatch):
    """probe.json and probe.csv: if the second cannot be written, neither is replaced (a new
    probe.json beside the previous run's probe.csv was the state a full disk used to leave)."""
    pair = {tmp_path / "probe.json": b"old json", tmp_path / "probe.csv": b"old csv"}
    files.atomic_write_many(pair)
    calls = []
    real_fsync = files.os.fsync

    def fsync_then_full(fd):
        calls.append(fd)
        if len(calls) == 2:  # the second file's data
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync_then_full)
    with pytest.raises(WriteError, match="probe.csv.*No space left"):
        files.atomic_write_many({tmp_path / "probe.json": b"new", tmp_path / "probe.csv": b"new"})
    monkeypatch.undo()
    assert (tmp_path / "probe.json").read_bytes() == b"old json"
    assert (tmp_path / "probe.csv").read_bytes() == b"old csv"
    assert _no_temporaries(tmp_path)


def test_unreadable_file_is_one_line(tmp_path, monkeypatch):
    """(As root every file is readable, so the permission check is simulated.)"""
    path = tmp_path / "features.csv"
    path.write_text("1,0\n")
    monkeypatch.setattr(files.os, "access", lambda *a, **k: False)
    with pytest.raises(ValueError, match="cannot be read: permission denied"):
        check_input_file(path, "features file")
