"""Animations from RGB frames: GIF through Pillow (a matplotlib dependency), MP4 through ffmpeg.

The file appears only when complete (written beside its destination, then renamed), so an
interrupted write leaves no broken animation behind.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FORMATS = (".gif", ".mp4")


def check_path(path) -> Path:
    """``path`` as a :class:`Path` if it names a format that can be written here; otherwise a
    ``ValueError`` saying why (unknown suffix; ``.mp4`` without ``ffmpeg`` on ``PATH``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"animation {path}: unknown format {path.suffix or '(none)'!r}; "
                         f"use {' or '.join(FORMATS)}")
    if suffix == ".mp4" and shutil.which("ffmpeg") is None:
        raise ValueError(f"animation {path}: writing .mp4 needs ffmpeg on PATH; "
                         "install it or write a .gif")
    if not path.parent.is_dir():
        raise ValueError(f"animation {path}: no directory {path.parent}")
    return path


def _frames(frames):
    shape = None
    for k, frame in enumerate(frames):
        f = np.asarray(frame)
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"frame {k}: expected an (H, W, 3) uint8 array, got "
                             f"{f.dtype} {f.shape}")
        if shape is None:
            shape = f.shape
        elif f.shape != shape:
            raise ValueError(f"frame {k} has shape {f.shape}, the first one {shape}")
        yield f


def _write_gif(frames, tmp, fps):
    from PIL import Image

    # Pillow merges a frame identical to the previous one into it (adding the durations):
    # callers that need one frame per step make each frame differ (e.g. a time caption).
    images = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
              for f in _frames(frames)]
    if not images:
        raise ValueError("no frames to write")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0, optimize=False, disposal=1)
    return len(images)


def _write_mp4(frames, tmp, fps):
    n, proc = 0, None
    try:
        for f in _frames(frames):
            if proc is None:
                h, w = f.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"MP4 (yuv420p) needs an even width and height, got {w}×{h}")
                proc = subprocess.Popen(
                    ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                     "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-an", "-vcodec", "libx264",
                     "-pix_fmt", "yuv420p", "-f", "mp4", tmp],
                    stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                )
            proc.stdin.write(f.tobytes())
            n += 1
        if proc is None:
            raise ValueError("no frames to write")
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed: {err.splitlines()[-1] if err else 'no message'}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    return n


def write_animation(frames, path, fps: int = 20) -> int:
    """Write the RGB frames (an iterable of ``(H, W, 3)`` uint8 arrays, all the same size) as an
    animation at ``fps`` frames per second: ``.gif`` always, ``.mp4`` where ``ffmpeg`` is on
    ``PATH``. Returns the number of frames written."""
    path = check_path(path)
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or not 1 <= fps <= 100:
        raise ValueError(f"fps must be an integer in [1, 100], got {fps!r}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write = _write_gif if path.suffix.lower() == ".gif" else _write_mp4
        n = write(frames, tmp, int(fps))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n
